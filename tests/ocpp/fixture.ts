// Shared fixture for the OCPP field-sealing tests: one CA, the endpoints of
// the flows (provisioning, two chargers, a PSP, a fleet, a service tool),
// seal/open callbacks over real Endpoints, the strict OCA validators, and
// sample messages in OCPP 1.6, 2.0.1 and 2.1.
import { join } from 'node:path';
import { World } from '../helpers/world.js';
import type { Endpoint } from '../../src/keystore/endpoint.js';
import type { Role } from '../../src/core/roles.js';
import { ocppValidators } from '../../src/gateway/ocpp/validators.js';
import { loadOcppPolicy, type OcppPolicy, type OpenFn, type SealFn, type OcppVersion, type RecipientRef } from '../../src/ocpp/index.js';

export const DEFAULT_POLICY_PATH = join(import.meta.dirname, '..', '..', 'policies', 'default.json');

export interface Fixture {
  w: World;
  policy: OcppPolicy;
  ep: Record<string, Endpoint>;
  bundles: Record<string, string>;
  sealAs: (sender: string) => SealFn;
  openAs: (me: string) => OpenFn;
  /** Resolves roles to the fixture's endpoints: charger CP-1, psp psp-1, fleet fleet-1. */
  resolve: (to: RecipientRef) => string | null;
}

const IDS: [Role, string][] = [
  ['provisioning', 'prov-1'],
  ['charger', 'CP-1'],
  ['charger', 'CP-2'],
  ['psp', 'psp-1'],
  ['fleet', 'fleet-1'],
  ['service-tool', 'tool-1'],
];

export async function fixture(): Promise<Fixture> {
  const w = new World();
  const ca = await w.ca('ca');
  const trust = w.trust(ca);
  const crls = [join(ca, 'crl.pem')];
  const ep: Record<string, Endpoint> = {};
  const bundles: Record<string, string> = {};
  for (const [role, id] of IDS) {
    // X25519 keeps the property tests quick; the default (X-Wing) suite is covered by the flow tests.
    const dir = await w.identity(ca, role, id, id === 'CP-1' || id === 'prov-1' ? {} : { suites: ['X25519-SHA256-AES256GCM'] });
    ep[id] = w.endpoint(dir, trust, crls);
    bundles[id] = w.bundle(dir);
  }
  const roles: Partial<Record<Role, string>> = { charger: 'CP-1', psp: 'psp-1', fleet: 'fleet-1' };
  return {
    w,
    policy: loadOcppPolicy(DEFAULT_POLICY_PATH),
    ep,
    bundles,
    sealAs: (sender) => (to, pt, o) => ep[sender]!.seal(bundles[to]!, pt, o),
    openAs: (me) => (env, check) => ep[me]!.open(env, { beforeCommit: (x) => check(x.plaintext) }),
    resolve: (to) => ('role' in to ? roles[to.role] ?? null : 'id' in to ? to.id : 'CP-1'),
  };
}

type V = ReturnType<typeof ocppValidators>[number];
const validators = new Map<OcppVersion, V>();
/** Strict validation against the OCA schema (throws an RPCError on failure). */
export function validate(version: OcppVersion, action: string, message: 'request' | 'response', payload: unknown): void {
  if (validators.size === 0) {
    const [v21, v201, v16] = ocppValidators();
    validators.set('2.1', v21!).set('2.0.1', v201!).set('1.6', v16!);
  }
  const v = validators.get(version)!;
  if (!v.subprotocol.endsWith(version)) throw new Error(`validator order: ${v.subprotocol}`);
  v.validate(`urn:${action}.${message === 'request' ? 'req' : 'conf'}`, payload);
}

export interface Secrets {
  vpnKey: string;
  vpnPassword: string;
  apnPassword: string;
  simPin: number;
}

export function setNetworkProfile(version: '2.0.1' | '2.1', s: Secrets): Record<string, unknown> {
  return {
    configurationSlot: 1,
    connectionData: {
      ocppVersion: version === '2.1' ? 'OCPP21' : 'OCPP20',
      ocppTransport: 'JSON',
      ocppCsmsUrl: 'wss://csms.example.com/ocpp/CP-1',
      messageTimeout: 30,
      securityProfile: 2,
      ocppInterface: 'Wireless0',
      ...(version === '2.1' ? { basicAuthPassword: 'basic-auth-password-0001' } : {}),
      vpn: { server: 'vpn.example.com', user: 'cp1', group: 'chargers', password: s.vpnPassword, key: s.vpnKey, type: 'IKEv2' },
      apn: { apn: 'internet.example', apnUserName: 'cp1', apnPassword: s.apnPassword, simPin: s.simPin, apnAuthentication: 'CHAP' },
    },
  };
}

export interface TxSecrets {
  payment: unknown;
  driverId: string;
  vin: string;
  soc: number;
}

/** A 2.x TransactionEvent with payment data (customData), driver/vehicle ids, an SoC reading and a signed energy reading. */
export function transactionEvent(version: '2.0.1' | '2.1', s: TxSecrets): Record<string, unknown> {
  return {
    eventType: 'Updated',
    timestamp: '2026-06-01T10:00:00.000Z',
    triggerReason: 'MeterValuePeriodic',
    seqNo: 4,
    transactionInfo: { transactionId: 'tx-0001', chargingState: 'Charging', customData: { vendorId: 'org.evseal', payment: s.payment } },
    idToken: {
      idToken: 'PSEUDO-7f3a9c',
      type: version === '2.1' ? 'Central' : 'Central',
      additionalInfo: [
        { additionalIdToken: s.driverId, type: 'DriverId' },
        { additionalIdToken: s.vin, type: 'VIN' },
      ],
    },
    evse: { id: 1, connectorId: 1 },
    meterValue: [
      {
        timestamp: '2026-06-01T10:00:00.000Z',
        sampledValue: [
          {
            value: 12345.5,
            measurand: 'Energy.Active.Import.Register',
            unitOfMeasure: { unit: 'Wh' },
            signedMeterValue: { signedMeterData: 'T0NNRnx7IkZWIjoiMS4wIn18', signingMethod: 'ECDSA-secp256r1-SHA256', encodingMethod: 'OCMF', publicKey: 'MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE' },
          },
          { value: s.soc, measurand: 'SoC', unitOfMeasure: { unit: 'Percent' } },
          { value: 11.2, measurand: 'Power.Active.Import', unitOfMeasure: { unit: 'kW' } },
        ],
      },
    ],
  };
}

/** A 1.6 MeterValues with an SoC reading, an energy register and a signed (OCMF) reading. */
export function meterValues16(soc: string): Record<string, unknown> {
  return {
    connectorId: 1,
    transactionId: 42,
    meterValue: [
      {
        timestamp: '2026-06-01T10:00:00Z',
        sampledValue: [
          { value: '12345', measurand: 'Energy.Active.Import.Register', unit: 'Wh' },
          { value: soc, measurand: 'SoC', unit: 'Percent', location: 'EV' },
          { value: 'OCMF|{"FV":"1.0","RD":[{"RV":12.345}]}|{"SD":"3045"}', format: 'SignedData', measurand: 'Energy.Active.Import.Register', context: 'Sample.Periodic' },
        ],
      },
    ],
  };
}

export function stopTransaction16(soc: string): Record<string, unknown> {
  return {
    transactionId: 42,
    idTag: 'PSEUDO-7f3a9c',
    meterStop: 23456,
    timestamp: '2026-06-01T11:00:00Z',
    reason: 'EVDisconnected',
    transactionData: [{ timestamp: '2026-06-01T11:00:00Z', sampledValue: [{ value: soc, measurand: 'SoC', unit: 'Percent' }, { value: '23456', unit: 'Wh' }] }],
  };
}

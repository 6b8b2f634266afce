import type { OcppVersion } from '../ocpp/index.js';

/** The demo's OCPP messages, schema-valid in their versions before and after sealing. */

export function setNetworkProfile(
  version: Exclude<OcppVersion, '1.6'>,
  stationId: string,
  s: { vpnKey: string; vpnPassword: string; apnPassword: string; simPin: number },
): Record<string, unknown> {
  return {
    configurationSlot: 1,
    connectionData: {
      ocppVersion: version === '2.1' ? 'OCPP21' : 'OCPP20',
      ocppTransport: 'JSON',
      ocppCsmsUrl: `wss://csms.chargeco.example/ocpp/${stationId}`,
      messageTimeout: 30,
      securityProfile: 2,
      ocppInterface: 'Wireless0',
      vpn: { server: 'vpn.chargeco.example', user: stationId, group: 'chargers', password: s.vpnPassword, key: s.vpnKey, type: 'IKEv2' },
      apn: { apn: 'iot.carrier.example', apnUserName: stationId, apnPassword: s.apnPassword, simPin: s.simPin, apnAuthentication: 'CHAP' },
    },
  };
}

/**
 * A 2.x TransactionEvent: a pseudonymous token the CSMS authorizes and bills
 * on, energy (also as a signed OCMF reading), and optionally payment data
 * (customData), driver and vehicle ids and the SoC, which the policy seals.
 */
export function transactionEvent(
  s: { payment?: unknown; driverId?: string; vin?: string; soc?: number },
  eventType: 'Started' | 'Updated',
  transactionId: string,
): Record<string, unknown> {
  const now = new Date().toISOString();
  const additionalInfo = [
    ...(s.driverId ? [{ additionalIdToken: s.driverId, type: 'DriverId' }] : []),
    ...(s.vin ? [{ additionalIdToken: s.vin, type: 'VIN' }] : []),
  ];
  return {
    eventType,
    timestamp: now,
    triggerReason: eventType === 'Started' ? 'Authorized' : 'MeterValuePeriodic',
    seqNo: eventType === 'Started' ? 0 : 1,
    transactionInfo: {
      transactionId,
      chargingState: 'Charging',
      ...(s.payment !== undefined ? { customData: { vendorId: 'org.evseal', payment: s.payment } } : {}),
    },
    idToken: { idToken: `PSEUDO-${transactionId}`, type: 'Central', ...(additionalInfo.length ? { additionalInfo } : {}) },
    evse: { id: 1, connectorId: 1 },
    meterValue: [
      {
        timestamp: now,
        sampledValue: [
          {
            value: 12345.5,
            measurand: 'Energy.Active.Import.Register',
            unitOfMeasure: { unit: 'Wh' },
            signedMeterValue: { signedMeterData: 'T0NNRnx7IkZWIjoiMS4wIn18', signingMethod: 'ECDSA-secp256r1-SHA256', encodingMethod: 'OCMF', publicKey: 'MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE' },
          },
          ...(s.soc !== undefined ? [{ value: s.soc, measurand: 'SoC', unitOfMeasure: { unit: 'Percent' } }] : []),
        ],
      },
    ],
  };
}

/** A 1.6 MeterValues with an SoC reading (sealed to the fleet) and an energy register (clear). */
export function meterValues16(soc: string): Record<string, unknown> {
  return {
    connectorId: 1,
    meterValue: [
      {
        timestamp: new Date().toISOString(),
        sampledValue: [
          { value: '12345', measurand: 'Energy.Active.Import.Register', unit: 'Wh' },
          { value: soc, measurand: 'SoC', unit: 'Percent', location: 'EV' },
        ],
      },
    ],
  };
}

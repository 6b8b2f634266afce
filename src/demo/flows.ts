import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import ocpp from 'ocpp-rpc';
import { pino } from 'pino';
import { startGateway } from '../gateway/server.js';
import { addStation } from '../gateway/stations.js';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { GatewayClient, type Delivery, type RolloutEvent } from '../client/gateway-client.js';
import { uploadFirmware } from '../client/firmware-upload.js';
import { packFirmware } from '../firmware/pack.js';
import { readPackageIndex, readHeadAndMeta } from '../firmware/package.js';
import { parseManifest } from '../firmware/manifest.js';
import { readInstalled, writeInstalled } from '../firmware/installed.js';
import { ServiceTool, ToolError } from '../client/service-tool.js';
import { inspectEnvelope } from '../core/envelope.js';
import { EvsealError } from '../core/errors.js';
import type { Endpoint } from '../keystore/endpoint.js';
import { initIdentity, installCert, rotatePrekeys } from '../keystore/identity-dir.js';
import { signCsrWithCaDir } from '../keystore/ca-dir.js';
import type { RunningGateway } from '../gateway/server.js';
import { runSimCharger, type SimEvent, type SimIo } from '../sim/charger.js';
import type { OcppProtocol } from '../gateway/ocpp/validators.js';
import { extractEnvelopes, loadOcppPolicy, openFields, protect, unprotect, type OcppVersion } from '../ocpp/index.js';
import { PASSPHRASE, type DemoWorld } from './setup.js';
import { scan } from './scan.js';
import { meterValues16, setNetworkProfile, transactionEvent } from './messages.js';

export interface FlowReport {
  name: string;
  ok: boolean;
  problems: string[];
  /** plaintexts that must never reach the gateway */
  secrets: string[];
}

interface Ctx {
  world: DemoWorld;
  gw: RunningGateway;
  addStation: (id: string, password: string) => Promise<void>;
  out: (s?: string) => void;
}

const FW_MODEL = 'VW-AC22';
const FW_SUCCESS = ['Downloading', 'Downloaded', 'SignatureVerified', 'Installing', 'Installed'];
const POLICY = loadOcppPolicy(join(import.meta.dirname, '..', '..', 'policies', 'default.json'));
const secret = (label: string): string => `${label}-${randomBytes(6).toString('hex')}`;
const short = (v: unknown, n = 150): string => {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s.length > n ? `${s.slice(0, n)}…` : s;
};
/** A message's clear JSON with each envelope shortened to who it goes to. */
const csmsView = (payload: unknown): string =>
  JSON.stringify(payload, (_k, v: unknown) => {
    if (typeof v === 'string' && v.startsWith('{"v":1,"hdr":')) {
      const h = inspectEnvelope(v);
      return `<sealed ${v.length} chars: ${h.from} -> ${h.to}, ${h.kind}>`;
    }
    return v;
  });

/** Resolves when `pred` holds, polling; throws after `ms`. */
async function until(pred: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new EvsealError('ERR_STATE', `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

class Flow {
  readonly problems: string[] = [];
  readonly secrets: string[] = [];
  constructor(
    readonly name: string,
    readonly out: (s?: string) => void,
  ) {
    out(`== ${name} ==`);
  }
  check(cond: boolean, what: string): void {
    if (!cond) this.problems.push(what);
  }
  saw(who: string, what: string): void {
    this.out(`  ${who.padEnd(24)}| ${what}`);
  }
  report(): FlowReport {
    this.out(this.problems.length === 0 ? '  -> ok\n' : `  -> FAILED: ${this.problems.join('; ')}\n`);
    return { name: this.name, ok: this.problems.length === 0, problems: this.problems, secrets: this.secrets };
  }
}

/** An endpoint connected to the gateway, with its bundle published, an inbox and the rollout events it is told of. */
async function connect(ctx: Ctx, ep: Endpoint): Promise<{ c: GatewayClient; inbox: Delivery[]; rollouts: RolloutEvent[] }> {
  const inbox: Delivery[] = [];
  const rollouts: RolloutEvent[] = [];
  const c = await GatewayClient.connect(ctx.gw.url, { chain: ep.id.chain, privateKey: ep.id.privateKey, onMessage: (d) => inbox.push(d), onRolloutEvent: (e) => rollouts.push(e) });
  await c.publishBundle(readFileSync(join(ep.id.dir, 'bundle.json'), 'utf8'));
  return { c, inbox, rollouts };
}

interface Charger {
  ep: Endpoint;
  io: SimIo;
  events: SimEvent[];
  outDir: string;
  /** where it downloads and installs firmware images */
  firmwareDir: string;
  stop: () => Promise<void>;
}

const PROTOCOL: Record<OcppVersion, OcppProtocol> = { '1.6': 'ocpp1.6', '2.0.1': 'ocpp2.0.1', '2.1': 'ocpp2.1' };

/** A simulated charger on the given OCPP version, with extra handlers; resolves once it has booted and published its bundle. */
async function startCharger(ctx: Ctx, ep: Endpoint, version: OcppVersion, handlers: Parameters<typeof runSimCharger>[0]['handlers'] = {}): Promise<Charger> {
  const id = ep.id.file.id;
  const password = `demo password for ${id}`;
  await ctx.addStation(id, password);
  const events: SimEvent[] = [];
  const outDir = join(ctx.world.dir, 'received', id);
  const firmwareDir = join(ctx.world.dir, 'received', `${id}-firmware`);
  const abort = new AbortController();
  let io: SimIo | undefined;
  const run = runSimCharger(
    { endpoint: ep, gateway: `${ctx.gw.url}/ocpp`, password, protocol: PROTOCOL[version], outDir, handlers, firmware: { dir: firmwareDir }, onEvent: (e) => events.push(e), afterBoot: async (x) => void (io = x) },
    abort.signal,
  ).catch((e: unknown) => {
    events.push({ type: 'refused', code: (e as Error).message });
  });
  await until(() => io !== undefined || events.some((e) => e.type === 'refused'), 10_000, `${id} to boot`);
  if (!io) throw new EvsealError('ERR_STATE', `${id} did not boot: ${JSON.stringify(events)}`);
  return {
    ep,
    io,
    events,
    outDir,
    firmwareDir,
    stop: async () => {
      abort.abort();
      await run;
    },
  };
}

export async function runFlows(ctx: Ctx): Promise<FlowReport[]> {
  const { world, out } = ctx;
  out('setting up identities (keys made on each device, certified by CSR)…');
  const ids = {
    cp16: await world.identity('op', 'charger', 'CP-16', 'ChargeCo'),
    cp201: await world.identity('op', 'charger', 'CP-201', 'ChargeCo'),
    cp21: await world.identity('op', 'charger', 'CP-21', 'ChargeCo'),
    prov: await world.identity('op', 'provisioning', 'prov-1', 'ChargeCo'),
    caSvc: await world.identity('op', 'provisioning', 'ca-svc', 'ChargeCo'),
    tool: await world.identity('oem', 'service-tool', 'tool-1', 'ChargeCo'),
    rogueTool: await world.identity('oem', 'service-tool', 'tool-x', 'OtherCo'),
    psp: await world.identity('psp', 'psp', 'psp-1', 'PayCo'),
    fleet: await world.identity('fleet', 'fleet', 'fleet-1', 'FleetCo'),
    factory: await world.identity('oem', 'charger', 'CP-NEW', 'VoltWorks'),
    publisher: await world.identity('oemFw', 'firmware-publisher', 'fw-pub-1', 'VoltWorks'),
  };
  // The device's own record of what it is and runs: firmware unpacking refuses another model or an older version.
  for (const d of [ids.cp16, ids.cp201]) writeInstalled(d, { model: FW_MODEL, version: '1.0.0' });
  const ep = (d: string, trust = world.backendTrust) => world.endpoint(d, trust);
  const prov = ep(ids.prov);
  const psp = ep(ids.psp);
  const fleet = ep(ids.fleet);
  const backends = {
    prov: await connect(ctx, prov),
    psp: await connect(ctx, psp),
    fleet: await connect(ctx, fleet),
  };
  out('chargers CP-16 (OCPP 1.6), CP-201 (2.0.1) and CP-21 (2.1) boot through the gateway\n');

  // Chargers that apply sealed SetNetworkProfile fields: what the CSMS sent, and what they restored.
  const applied = new Map<string, { saw: unknown; restored: Record<string, unknown>; from: string[] }>();
  const networkProfileHandler = (version: OcppVersion, cp: () => Endpoint) => ({
    SetNetworkProfile: async (params: unknown) => {
      const u = unprotect(
        { version, action: 'SetNetworkProfile', message: 'request', from: 'csms', payload: params as Record<string, unknown> },
        { policy: POLICY, me: cp().id.file.id, open: (env, check) => cp().open(env, { beforeCommit: (x) => check(x.plaintext) }) },
      );
      if (u.pending.length > 0 || u.withheld.length > 0) return { status: 'Rejected' };
      const restored: Record<string, unknown> = {};
      const cd = (u.payload as { connectionData: { vpn?: Record<string, unknown>; apn?: Record<string, unknown> } }).connectionData;
      for (const r of u.restored) restored[r.pointer] = r.pointer.split('/').slice(2).reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], cd);
      applied.set(cp().id.file.id, { saw: params, restored, from: [...new Set(u.restored.map((r) => r.from))] });
      return { status: 'Accepted' };
    },
  });
  const cp16Ep = ep(ids.cp16, world.chargerTrust);
  const cp201Ep = ep(ids.cp201, world.chargerTrust);
  const cp21Ep = ep(ids.cp21, world.chargerTrust);
  const chargers = {
    cp16: await startCharger(ctx, cp16Ep, '1.6'),
    cp201: await startCharger(ctx, cp201Ep, '2.0.1', networkProfileHandler('2.0.1', () => cp201Ep)),
    cp21: await startCharger(ctx, cp21Ep, '2.1', networkProfileHandler('2.1', () => cp21Ep)),
  };
  const bundleOf = async (id: string) => {
    const b = await backends.prov.c.getBundle(id);
    if (!b) throw new EvsealError('ERR_NOT_FOUND', `no bundle for ${id}`);
    return b;
  };
  const reports: FlowReport[] = [];
  try {
    // ---------------------------------------------------------------- 1. credentials
    for (const [version, id, n] of [['2.0.1', 'CP-201', '1a'], ['2.1', 'CP-21', '1b']] as const) {
      const f = new Flow(`${n}. credentials the CSMS must not see: SetNetworkProfile, OCPP ${version}, provisioning -> ${id}`, out);
      const s = { vpnKey: secret('vpn-psk'), vpnPassword: secret('vpn-pass'), apnPassword: secret('apn-pass'), simPin: 1000 + (randomBytes(2).readUInt16BE() % 9000) };
      f.secrets.push(s.vpnKey, s.vpnPassword, s.apnPassword);
      const bundle = await bundleOf(id);
      const p = protect(
        { version, action: 'SetNetworkProfile', message: 'request', from: 'csms', payload: setNetworkProfile(version, id, s) },
        { policy: POLICY, resolve: () => id, seal: (_to, pt, o) => prov.seal(bundle, pt, o) },
      );
      const callId = `np-${randomBytes(8).toString('hex')}`;
      await backends.prov.c.sendOcppCall({ to: id, kind: 'credentials', id: callId, expires: Date.now() + 60_000, action: 'SetNetworkProfile', payload: p.payload });
      await until(() => backends.prov.inbox.some((d) => d.format === 'ocpp-result' && d.body.includes(callId)), 10_000, `${id} to answer`);
      const result = backends.prov.inbox.find((d) => d.format === 'ocpp-result' && d.body.includes(callId))!;
      await backends.prov.c.ack(result.seq);
      const a = applied.get(id);
      f.check(a !== undefined, 'the charger applied the profile');
      const saw = a?.saw as { connectionData: Record<string, unknown> } | undefined;
      f.saw('CSMS/gateway saw', `SetNetworkProfile ${short(csmsView(saw?.connectionData), 420)}`);
      f.saw(`${id} received`, short(a?.restored ?? {}, 420));
      f.saw('provisioning got back', short(JSON.parse(result.body)));
      f.check(a?.restored['/connectionData/vpn/key'] === s.vpnKey && a?.restored['/connectionData/vpn/password'] === s.vpnPassword && a?.restored['/connectionData/apn/apnPassword'] === s.apnPassword, 'the charger restored the VPN key, VPN password and APN password');
      f.check(JSON.stringify(saw).includes('evseal:sealed') && !JSON.stringify(saw).includes(s.vpnKey), 'the CSMS saw placeholders, not the secrets');
      reports.push(f.report());
    }
    {
      const f = new Flow('1c. Wi-Fi credentials and payment-terminal keys as a sealed configuration bundle, DataTransfer, OCPP 1.6, provisioning -> CP-16', out);
      const wifi = secret('wifi-psk');
      const terminalKey = secret('terminal-key');
      f.secrets.push(wifi, terminalKey);
      const config = JSON.stringify({ wifi: { ssid: 'ChargeCo-Depot', psk: wifi }, paymentTerminal: { keyId: 'PT-7', key: terminalKey } });
      const env = prov.seal(await bundleOf('CP-16'), new TextEncoder().encode(config), { kind: 'config', contentType: 'application/json' });
      const acc = await backends.prov.c.sendEnvelope(env);
      const h = inspectEnvelope(env);
      await until(() => chargers.cp16.events.some((e) => e.type === 'opened' && e.msgId === h.id), 10_000, 'CP-16 to open the bundle');
      const got = readFileSync(join(chargers.cp16.outDir, `${h.id}.bin`), 'utf8');
      f.saw('CSMS/gateway saw', `DataTransfer org.evseal envelope: ${short(inspectEnvelope(env))} (audit index ${acc.receipt?.index})`);
      f.saw('CP-16 received', got);
      f.check(got === config, 'CP-16 opened exactly the configuration that was sealed');
      reports.push(f.report());
    }

    // ---------------------------------------------------------------- 2. service tool
    {
      const f = new Flow('2. service tool <-> charger over an end-to-end session: tool-1 (ChargeCo, OEM-certified) -> CP-16', out);
      const tool = await ServiceTool.connect(ep(ids.tool), ctx.gw.url);
      try {
        const first = await tool.open('CP-16', { cmd: 'set-config', key: 'HeartbeatInterval', value: '120' }, { timeoutMs: 15_000 });
        const second = await first.session.send({ cmd: 'get-config', keys: ['HeartbeatInterval'] }, { timeoutMs: 15_000 });
        const third = await first.session.send({ cmd: 'unlock-connector', connector: 1 }, { timeoutMs: 15_000 });
        f.saw('CSMS/gateway saw', `${tool.sent.length} session messages of kind command between tool-1 and CP-16 (ciphertext only)`);
        f.saw('tool-1 received', `set-config ${short(first.result)}; get-config ${short(second)}; unlock-connector ${short(third)}`);
        f.check(first.result.ok && second.ok && third.ok, 'every command succeeded');
        f.check(JSON.stringify(second).includes('120'), 'get-config shows the value set');
      } finally {
        await tool.gateway.close();
      }
      const rogue = await ServiceTool.connect(ep(ids.rogueTool), ctx.gw.url);
      try {
        await rogue.open('CP-16', { cmd: 'reset', type: 'Hard' }, { timeoutMs: 15_000 });
        f.check(false, 'a tool of another operator was obeyed');
      } catch (e) {
        f.saw('tool-x (OtherCo) got', `refused (${e instanceof ToolError ? e.outcome : (e as Error).message})`);
        f.check(e instanceof ToolError && e.outcome === 'refused', 'the charger refused a tool of another operator');
      } finally {
        await rogue.gateway.close();
      }
      reports.push(f.report());
    }

    // ---------------------------------------------------------------- 3. payment
    {
      const f = new Flow('3. payment: CP-201 seals card data to the PSP inside TransactionEvent (2.0.1); the PSP answers sealed', out);
      const card = secret('card-token');
      const approval = secret('auth-code');
      f.secrets.push(card, approval);
      const payment = { cardToken: card, scheme: 'visa', amountAuthorized: 50 };
      const payload = transactionEvent({ payment }, 'Started', 'tx-pay-1');
      const pspBundle = (await backends.prov.c.getBundle('psp-1'))!;
      const fleetBundle = (await backends.prov.c.getBundle('fleet-1'))!;
      const seal201 = (to: string, pt: Uint8Array, o: { kind: string; contentType: string }) => cp201Ep.seal(to === 'psp-1' ? pspBundle : fleetBundle, pt, o);
      const p = protect({ version: '2.0.1', action: 'TransactionEvent', message: 'request', from: 'station', payload }, { policy: POLICY, resolve: (r) => ('role' in r ? (r.role === 'psp' ? 'psp-1' : r.role === 'fleet' ? 'fleet-1' : null) : null), seal: seal201 });
      await chargers.cp201.io.call('TransactionEvent', p.payload);
      await until(() => backends.psp.inbox.length > 0, 10_000, 'the PSP to receive the sealed payment data');
      const d = backends.psp.inbox.shift()!;
      const opened = openFields(d.body, { open: (env, check) => psp.open(env, { beforeCommit: (x) => check(x.plaintext) }) });
      await backends.psp.c.ack(d.seq);
      const state = (await ctx.gw.store.getStationState('CP-201')) as Record<string, unknown> | undefined;
      f.saw('CSMS/gateway saw', `TransactionEvent ${short(csmsView(p.payload.transactionInfo), 300)}`);
      f.saw('CSMS billing state', short(state?.transactions ?? state, 300));
      f.saw('psp-1 received', short(opened.fields));
      f.check(JSON.stringify(opened.fields).includes(card), 'the PSP got the card token');
      // The PSP's sealed answer goes back to the charger.
      const answer = JSON.stringify({ transactionId: 'tx-pay-1', status: 'APPROVED', authCode: approval });
      const env = psp.seal(await bundleOf('CP-201'), new TextEncoder().encode(answer), { kind: 'payment', contentType: 'application/json' });
      await backends.psp.c.sendEnvelope(env);
      const id = inspectEnvelope(env).id;
      await until(() => chargers.cp201.events.some((e) => e.type === 'opened' && e.msgId === id), 10_000, 'CP-201 to open the PSP answer');
      const got = readFileSync(join(chargers.cp201.outDir, `${id}.bin`), 'utf8');
      f.saw('CP-201 received', got);
      f.check(got === answer, 'the charger opened the PSP answer');
      f.check(!JSON.stringify(p.payload).includes(card), 'the CSMS message does not hold the card token');
      reports.push(f.report());
    }

    // ---------------------------------------------------------------- 4. fleet
    {
      const f = new Flow('4. fleet data minimization: CP-21 (2.1) and CP-16 (1.6) send driver, vehicle and SoC only to the fleet', out);
      const driver = secret('driver');
      const vin = `WVW${randomBytes(7).toString('hex').toUpperCase()}`;
      const soc = 37;
      f.secrets.push(driver, vin);
      const fleetBundle = (await backends.prov.c.getBundle('fleet-1'))!;
      const payload = transactionEvent({ driverId: driver, vin, soc }, 'Updated', 'tx-fleet-1');
      const p = protect({ version: '2.1', action: 'TransactionEvent', message: 'request', from: 'station', payload }, { policy: POLICY, resolve: (r) => ('role' in r && r.role === 'fleet' ? 'fleet-1' : null), seal: (_to, pt, o) => cp21Ep.seal(fleetBundle, pt, o) });
      await chargers.cp21.io.call('TransactionEvent', p.payload);
      const soc16 = '64';
      const p16 = protect({ version: '1.6', action: 'MeterValues', message: 'request', from: 'station', payload: meterValues16(soc16) }, { policy: POLICY, resolve: () => 'fleet-1', seal: (_to, pt, o) => cp16Ep.seal(fleetBundle, pt, o) });
      if (p16.side) await chargers.cp16.io.call('DataTransfer', p16.side as unknown as Record<string, unknown>);
      await chargers.cp16.io.call('MeterValues', p16.payload);
      await until(() => backends.fleet.inbox.length >= 2, 10_000, 'the fleet to receive both messages');
      const got = backends.fleet.inbox.splice(0).map((d) => ({ d, o: openFields(d.body, { open: (env, check) => fleet.open(env, { beforeCommit: (x) => check(x.plaintext) }) }) }));
      await backends.fleet.c.ack(...got.map((g) => g.d.seq));
      const tokenSeen = (p.payload.idToken as { idToken: string }).idToken;
      f.saw('CSMS/gateway saw (2.1)', `idToken ${short(csmsView(p.payload.idToken), 200)}; meterValue ${short(csmsView(p.payload.meterValue), 320)}`);
      f.saw('CSMS/gateway saw (1.6)', `MeterValues ${short(csmsView(p16.payload), 300)} + DataTransfer sealed-fields ${short(p16.side ? csmsView(extractEnvelopes(p16.side)) : 'none')}`);
      for (const g of got) f.saw(`fleet-1 received (${g.o.ocpp})`, short(g.o.fields, 300));
      const all = JSON.stringify(got.map((g) => g.o.fields));
      f.check(all.includes(driver) && all.includes(vin) && all.includes(String(soc)) && all.includes(soc16), 'the fleet got driver id, VIN and both SoC readings');
      f.check(tokenSeen.startsWith('PSEUDO-') && JSON.stringify(p.payload).includes('OCMF'), 'the CSMS kept the pseudonymous token and the signed (OCMF) meter value');
      f.check(!JSON.stringify(p.payload).includes(driver) && !JSON.stringify(p.payload).includes(vin), 'the CSMS message holds neither driver id nor VIN');
      reports.push(f.report());
    }

    // ---------------------------------------------------------------- 5. device provisioning
    {
      const f = new Flow('5. device provisioning: CP-NEW boots with an OEM factory certificate, gets its operator certificate, then a sealed configuration', out);
      const caSvc = ep(ids.caSvc);
      const ca = await connect(ctx, caSvc);
      // On the charger: a new operator key pair; only its CSR leaves the device.
      const opDir = join(world.dir, 'ids', 'CP-NEW-operator');
      const { csrPem } = await initIdentity(opDir, { role: 'charger', id: 'CP-NEW', operator: 'ChargeCo', passphrase: PASSPHRASE });
      let installed = false;
      const factory = await startCharger(ctx, ep(ids.factory, world.chargerTrust), '2.0.1', {
        CertificateSigned: async (params: unknown) => {
          installCert(opDir, (params as { certificateChain: string }).certificateChain, Math.floor(Date.now() / 1000), PASSPHRASE);
          rotatePrekeys(opDir, Math.floor(Date.now() / 1000), { passphrase: PASSPHRASE });
          installed = true;
          return { status: 'Accepted' };
        },
      });
      const sign = (await factory.io.call('SignCertificate', { csr: csrPem, certificateType: 'ChargingStationCertificate' })) as { status: string };
      await until(() => ca.inbox.some((d) => d.format === 'ocpp-csr'), 10_000, 'the CA service to get the CSR');
      const req = ca.inbox.find((d) => d.format === 'ocpp-csr')!;
      const { csr, certificateType } = JSON.parse(req.body) as { csr: string; certificateType?: string };
      // The CA service (not the gateway) checks and signs.
      const { certPem } = await signCsrWithCaDir(world.caDir('op'), csr, { now: new Date(Date.now() - 60_000) });
      await ca.c.sendOcppCert({ to: 'CP-NEW', id: `cert-${randomBytes(6).toString('hex')}`, expires: Date.now() + 60_000, certificateChain: certPem, certificateType });
      await ca.c.ack(req.seq);
      await until(() => installed, 10_000, 'CertificateSigned to reach CP-NEW');
      await factory.stop();
      f.saw('CSMS/gateway saw', `SignCertificate (${sign.status}) with a public CSR, forwarded to ca-svc; CertificateSigned with the chain ca-svc signed`);
      // The charger reconnects under its operator identity and publishes its new bundle.
      const cpNew = ep(opDir, world.chargerTrust);
      const after = await startCharger(ctx, cpNew, '2.0.1');
      const ssid = secret('depot-wifi');
      f.secrets.push(ssid);
      const config = JSON.stringify({ wifi: { ssid: 'Depot-3', psk: ssid }, heartbeatInterval: 300 });
      const env = prov.seal(await bundleOf('CP-NEW'), new TextEncoder().encode(config), { kind: 'config', contentType: 'application/json' });
      await backends.prov.c.sendEnvelope(env);
      const id = inspectEnvelope(env).id;
      await until(() => after.events.some((e) => e.type === 'opened' && e.msgId === id), 10_000, 'CP-NEW to open its configuration');
      const got = readFileSync(join(after.outDir, `${id}.bin`), 'utf8');
      f.saw('CP-NEW received', `operator certificate from ${ca.c.identity.id} (anchor ChargeCo Operator CA), then ${got}`);
      f.check(got === config, 'CP-NEW opened the configuration sealed to its new operator identity');
      await after.stop();
      await ca.c.close();
      reports.push(f.report());
    }

    // ---------------------------------------------------------------- 6. ordinary OCPP clients
    {
      const f = new Flow('6. ordinary OCPP clients that know nothing of evseal keep working, beside the gateway\'s built-in CSMS and in proxy mode', out);
      await ctx.addStation('CP-PLAIN', 'plain charger password');
      const plain = plainClient(`${ctx.gw.url}/ocpp`, 'CP-PLAIN', 'plain charger password');
      await plain.connect();
      const boot = (await plain.call('BootNotification', { chargePointVendor: 'Plain', chargePointModel: 'P1' })) as { status: string };
      const tx = (await plain.call('StartTransaction', { connectorId: 1, idTag: 'RFID-1', meterStart: 0, timestamp: new Date().toISOString() })) as { transactionId: number };
      await plain.call('StopTransaction', { transactionId: tx.transactionId, meterStop: 7000, timestamp: new Date().toISOString() });
      await plain.close({ code: 1000 });
      f.saw('built-in CSMS', `CP-PLAIN (1.6, no evseal): boot ${boot.status}, transaction ${tx.transactionId} started and stopped`);
      f.check(boot.status === 'Accepted' && Number.isInteger(tx.transactionId), 'a plain 1.6 client transacts against the built-in CSMS');
      const proxy = await proxyCheck(ctx);
      f.saw('proxy mode', proxy.summary);
      f.check(proxy.ok, 'a plain client works through the proxy and the upstream CSMS gets its frames byte for byte');
      reports.push(f.report());
    }
    // ---------------------------------------------------------------- 7. firmware
    {
      const f = new Flow('7. firmware: fw-pub-1 (OEM firmware root) packs an encrypted, signed image for CP-16 (1.6) and CP-201 (2.0.1); prov-1 rolls it out through the gateway', out);
      // A random image with a canary in it: if the gateway ever held the image in clear, the scan finds the canary.
      const canary = secret('firmware-canary');
      f.secrets.push(canary);
      const image = Buffer.concat([randomBytes(128 * 1024), Buffer.from(canary), randomBytes(128 * 1024)]);
      const imagePath = join(world.dir, 'publisher-image.bin');
      const pkgPath = join(world.dir, 'publisher-image.evfw');
      writeFileSync(imagePath, image);
      f.check(scan([imagePath], [canary]).length > 0, 'the scanner finds the canary in the clear image');
      const pkg = await packFirmware({
        publisher: ep(ids.publisher),
        input: imagePath,
        output: pkgPath,
        version: '2.0.0',
        model: FW_MODEL,
        recipients: [ids.cp16, ids.cp201].map((d) => ({ bundleJson: readFileSync(join(d, 'bundle.json'), 'utf8') })),
      });
      const index = await readPackageIndex(pkgPath);
      const manifest = parseManifest((await readHeadAndMeta(pkgPath)).meta.manifestBytes);
      // What the built-in CSMS sends: tapped where every call enters the router.
      const calls: string[] = [];
      const submit = ctx.gw.router.submit.bind(ctx.gw.router);
      ctx.gw.router.submit = (from, s) => {
        if (s.format === 'ocpp-call' && s.kind === 'firmware') calls.push(s.body);
        return submit(from, s);
      };
      const stations = { 'CP-16': chargers.cp16, 'CP-201': chargers.cp201 };
      const up = await uploadFirmware(backends.prov.c, pkgPath);
      let r;
      try {
        r = await backends.prov.c.startRollout({ id: `demo-fw-${pkg.packageId.slice(0, 8)}`, packageId: pkg.packageId, stations: Object.keys(stations), lifetimeSec: 600 });
      } finally {
        ctx.gw.router.submit = submit;
      }
      const rid = r.id;
      const statuses = (id: string) => backends.prov.rollouts.flatMap((e) => (e.id === rid && e.station === id && e.status ? [e.status] : []));
      const FINAL = ['Installed', 'DownloadFailed', 'InvalidSignature', 'InstallVerificationFailed', 'InstallationFailed'];
      await until(() => Object.keys(stations).every((id) => statuses(id).some((s) => FINAL.includes(s))), 30_000, 'both chargers to reach a final firmware status');
      const answers = backends.prov.inbox.filter((d) => d.format === 'ocpp-result' && Object.values(r.stations).some((s) => s.msgId !== undefined && d.body.includes(s.msgId)));
      if (answers.length > 0) await backends.prov.c.ack(...answers.map((d) => d.seq));
      f.saw('CSMS/gateway saw', `package ${up.size} bytes (uploaded ${up.sent}), manifest ${short({ model: manifest.model, version: manifest.version, size: manifest.size, slots: manifest.slots, suite: manifest.suite, ciphertext: manifest.ciphertext }, 300)}; key slots for ${index.deviceIds.join(', ')}; publisher ${index.publisher}`);
      const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
      for (const [id, cp] of Object.entries(stations)) {
        const call = calls.map((c) => JSON.parse(c) as { action: string; payload: { requestId: number; firmware: { location: string; signature?: string } } }).find((c) => c.payload.firmware.location.includes(`/${id}/`));
        const location = call?.payload.firmware.location ?? '';
        f.saw(`CSMS/gateway -> ${id}`, `${call?.action} requestId ${call?.payload.requestId} location ${location.replace(/[A-Za-z0-9_-]{22}$/, '<token>')}`);
        f.saw(`CSMS/gateway saw ${id}`, `statuses ${statuses(id).join(' -> ')}`);
        const probe = location ? await rangeProbe(location) : 'no location';
        f.saw('range probe', probe);
        f.check(/^206 bytes 0-15\/\d+$/.test(probe), `the gateway serves ${id}'s download by byte range`);
        const installed = cp.events.flatMap((e) => (e.type === 'firmware' && e.requestId === r.requestId ? [e.status] : []));
        let got: Buffer | undefined;
        try {
          got = readFileSync(join(cp.firmwareDir, `image-${r.requestId}.bin`));
        } catch {
          got = undefined;
        }
        f.saw(`${id} received`, `reported ${installed.join(' -> ')}; image ${got?.length ?? 0} bytes sha256 ${got ? sha(got).slice(0, 16) : '-'}… (published ${sha(image).slice(0, 16)}…), now runs ${readInstalled(id === 'CP-16' ? ids.cp16 : ids.cp201)?.version}`);
        f.check(call?.action === (id === 'CP-16' ? 'SignedUpdateFirmware' : 'UpdateFirmware'), `${id} got the firmware call of its OCPP version`);
        f.check(JSON.stringify(statuses(id)) === JSON.stringify(FW_SUCCESS) && JSON.stringify(installed) === JSON.stringify(FW_SUCCESS), `${id} went Downloading -> … -> Installed, and the rollout client saw it`);
        f.check(got !== undefined && sha(got) === sha(image), `${id}'s image is byte-identical to the published one`);
      }
      reports.push(f.report());
    }
  } finally {
    for (const c of Object.values(chargers)) await c.stop();
    for (const b of Object.values(backends)) await b.c.close();
  }
  return reports;
}

/** GETs the first 16 bytes of a firmware location: "<status> <content-range>". */
function rangeProbe(location: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(location, { headers: { range: 'bytes=0-15' } }, (res) => {
      res.resume();
      resolve(`${res.statusCode} ${res.headers['content-range'] ?? ''}`);
    });
    req.on('error', reject);
    req.end();
  });
}

function plainClient(endpoint: string, identity: string, password: string) {
  return new ocpp.RPCClient({ endpoint, identity, password, protocols: ['ocpp1.6'], strictMode: true, reconnect: false } as ConstructorParameters<typeof ocpp.RPCClient>[0]);
}

/**
 * A second gateway in proxy mode in front of an existing CSMS (here a small
 * ocpp-rpc server standing in for it): a plain 1.6 client boots through it,
 * and the upstream receives its frame exactly as sent.
 */
async function proxyCheck(ctx: Ctx): Promise<{ ok: boolean; summary: string }> {
  const received: string[] = [];
  const upstream = new ocpp.RPCServer({ protocols: ['ocpp1.6'], strictMode: true });
  upstream.on('client', (c: { handle: (m: string, f: () => Promise<unknown>) => void; on: (e: string, f: (m: { message: Buffer | string; outbound: boolean }) => void) => void }) => {
    c.on('message', (m) => {
      if (!m.outbound) received.push(String(m.message));
    });
    c.handle('BootNotification', async () => ({ status: 'Accepted', interval: 300, currentTime: new Date().toISOString() }));
  });
  const http = await upstream.listen(0, '127.0.0.1');
  const port = (http.address() as { port: number }).port;
  const gw2 = await startGateway({
    port: 0,
    dataDir: join(ctx.world.dir, 'gateway-proxy'),
    trust: ctx.world.backendTrust,
    crlFiles: ctx.world.crls,
    upstream: `ws://127.0.0.1:${port}`,
    log: pino({ level: 'silent' }),
  });
  try {
    await addStation(gw2.store, { id: 'CP-PROXIED', password: 'proxied charger password' }, Date.now());
    const c = plainClient(`${gw2.url}/ocpp`, 'CP-PROXIED', 'proxied charger password');
    const sent: string[] = [];
    c.on('message', (m: { message: Buffer | string; outbound: boolean }) => {
      if (m.outbound) sent.push(String(m.message));
    });
    await c.connect();
    const boot = (await c.call('BootNotification', { chargePointVendor: 'Plain', chargePointModel: 'P2' })) as { status: string };
    await c.close({ code: 1000 });
    const same = sent.length > 0 && sent.every((f) => received.includes(f));
    return { ok: boot.status === 'Accepted' && same, summary: `CP-PROXIED (1.6, no evseal) -> gateway -> upstream CSMS: boot ${boot.status}; ${sent.length} frame(s) sent, ${same ? 'received upstream byte for byte' : 'NOT received unchanged'}` };
  } finally {
    await gw2.close();
    await upstream.close({ force: true });
  }
}

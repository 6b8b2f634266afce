import { readFileSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import { parseRolePolicy } from '../../core/role-policy.js';
import { runSimCharger, type SimEvent } from '../../sim/charger.js';
import type { OcppProtocol } from '../../gateway/ocpp/validators.js';
import { Endpoint } from '../../keystore/endpoint.js';
import { loadTrust } from '../../keystore/trust-files.js';
import { readInput, wallClock } from '../io.js';
import { collect, intArg } from '../options.js';
import { passphraseFor } from '../passphrase.js';
import { readInstalled, writeInstalled } from '../../firmware/installed.js';

function ocppArg(v: string): OcppProtocol {
  if (v !== '1.6' && v !== '2.0.1' && v !== '2.1') throw new InvalidArgumentError('must be 1.6, 2.0.1 or 2.1');
  return `ocpp${v}`;
}

/** One line per event: metadata only, a plaintext is never printed. */
function describe(e: SimEvent): string {
  switch (e.type) {
    case 'booted':
      return `booted (${e.protocol}, heartbeat interval ${e.interval} s)`;
    case 'heartbeat':
      return `heartbeat ${e.currentTime}`;
    case 'opened':
      return `opened ${e.msgId} from ${e.from} (${e.role}) kind ${e.kind}, ${e.size} bytes${e.file ? ` -> ${e.file}` : ''}`;
    case 'replay':
      return `already processed ${e.msgId} from ${e.from}: acknowledged again`;
    case 'refused':
      return `refused ${e.msgId ?? 'a delivery'}${e.from ? ` from ${e.from}` : ''} [${e.code}]`;
    case 'command':
      return `command ${e.cmd} from ${e.from} (${e.operator}) in ${e.msgId}: ${e.ok ? 'done' : `failed [${e.error}]`}`;
    case 'replied':
      return `replied to ${e.inReplyTo}: sealed ${e.kind} to ${e.to} (seq ${e.seq})`;
    case 'reply-failed':
      return `reply to ${e.inReplyTo} for ${e.to} failed [${e.code}]`;
    case 'notice':
      return `notice ${JSON.stringify(e.notice)}`;
    case 'firmware':
      return `firmware update ${e.requestId}: ${e.status}${e.detail ? ` (${e.detail})` : ''}`;
  }
}

export function registerSim(program: Command): void {
  const sim = program.command('sim').description('simulators for demos and tests');

  sim
    .command('charger')
    .description('a simulated charging station (ocpp-rpc, strict mode): boots, heartbeats, opens and answers sealed messages, takes service-tool commands over sessions')
    .requiredOption('--as <ID_DIR>', 'the charger\'s identity directory (its id is the OCPP station id)')
    .requiredOption('--gateway <URL>', 'the gateway\'s OCPP endpoint, e.g. ws://127.0.0.1:8080/ocpp')
    .option('--password <P>', 'Basic-auth password (security profiles 1 and 2)')
    .option('--ocpp <VERSION>', '1.6, 2.0.1 or 2.1', ocppArg, 'ocpp2.0.1' as OcppProtocol)
    .requiredOption('--trust <T>', 'a CA certificate (trusted for every role) or a trust-policy JSON file')
    .option('--crl <CRL.pem>', 'a CRL to load (repeatable); remembered in ID_DIR/state.json', collect, [])
    .option('--no-revocation-check', 'waive CRL checking (explicit opt-out; revocation otherwise fails closed)')
    .option('--role-policy <FILE>', 'override the default role policy (JSON)')
    .option('--heartbeats <N>', 'stop heartbeating after N heartbeats', intArg)
    .option('--heartbeat-interval <SECONDS>', 'seconds between heartbeats (default: the interval from BootNotification)', intArg)
    .option('--count <N>', 'exit after N messages were opened and answered', intArg)
    .option('--out-dir <DIR>', 'write each plaintext to DIR/<msgId>.bin (never to stdout)')
    .option('--tool-operator <NAME>', 'an operator whose service tools may command this charger (repeatable; default: the charger\'s own operator)', collect, [])
    .option('--tool-session-max-age <SECONDS>', 'a service-tool session older than this takes no more commands', intArg, 900)
    .option('--firmware-dir <DIR>', 'take UpdateFirmware / SignedUpdateFirmware: download, verify and install packages here')
    .option('--firmware-model <MODEL>', 'with --firmware-dir: the device model, recorded when ID_DIR has no installed firmware yet')
    .option('--firmware-version <V>', 'with --firmware-dir: the installed version, recorded when ID_DIR has none yet', '0')
    .option('--tls-ca <PEM>', 'CA certificate that signed the gateway\'s TLS certificate (wss://)')
    .option('--tls-cert <PEM>', 'TLS client certificate (security profile 3)')
    .option('--tls-key <PEM>', 'private key of --tls-cert')
    .option('--json', 'print one JSON object per event')
    .action(async (o) => {
      const rolePolicy = o.rolePolicy ? parseRolePolicy(readFileSync(o.rolePolicy, 'utf8')) : undefined;
      const endpoint = Endpoint.load(o.as, {
        passphrase: await passphraseFor(o.as),
        trust: loadTrust(o.trust),
        crls: o.crl,
        revocationCheck: o.revocationCheck,
        rolePolicy,
        wall: wallClock(),
      });
      const wsOpts: Record<string, unknown> = {};
      if (o.tlsCa) wsOpts.ca = readInput(o.tlsCa);
      if (o.tlsCert) wsOpts.cert = readInput(o.tlsCert);
      if (o.tlsKey) wsOpts.key = readInput(o.tlsKey);
      if (o.firmwareDir && o.firmwareModel && readInstalled(o.as) === undefined) writeInstalled(o.as, { model: o.firmwareModel, version: o.firmwareVersion });
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        await runSimCharger(
          {
            endpoint,
            gateway: o.gateway,
            password: o.password,
            protocol: o.ocpp,
            heartbeats: o.heartbeats,
            heartbeatIntervalMs: o.heartbeatInterval === undefined ? undefined : o.heartbeatInterval * 1000,
            count: o.count,
            outDir: o.outDir,
            rolePolicy,
            toolOperators: o.toolOperator,
            toolSessionMaxAgeSec: o.toolSessionMaxAge,
            wsOpts,
            ...(o.firmwareDir ? { firmware: { dir: o.firmwareDir, ...(wsOpts.ca ? { ca: wsOpts.ca as Buffer } : {}) } } : {}),
            onEvent: (e) => process.stdout.write((o.json ? JSON.stringify(e) : describe(e)) + '\n'),
          },
          stop.signal,
        );
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
}

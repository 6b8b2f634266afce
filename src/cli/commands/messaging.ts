import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { GatewayClient, type ClientOptions, type Delivery, type Notice } from '../../client/gateway-client.js';
import { verifyReceipt } from '../../gateway/audit/log.js';
import { publicKeyFromB64u } from '../../gateway/identity.js';
import { EvsealError } from '../../core/errors.js';
import { envelopeHeader } from '../../core/envelope.js';
import type { Endpoint } from '../../keystore/endpoint.js';
import { readPublicOneTime } from '../../keystore/identity-dir.js';
import { prekeyToJSON } from '../../core/prekey.js';
import { writeFileAtomic } from '../../keystore/atomic-file.js';
import { collect, intArg } from '../options.js';
import { printJson, readInput } from '../io.js';
import { loadEndpoint, payloadOptions } from './envelope.js';

export interface NetOpts {
  as: string;
  gateway: string;
  trust: string;
  crl: string[];
  revocationCheck: boolean;
  rolePolicy?: string;
  gatewayKey?: string;
  gatewayCa?: string;
}

/** The options every gateway-connected command shares (send, recv, tool). */
export function netOptions(c: Command): Command {
  return c
    .requiredOption('--as <ID_DIR>', "this endpoint's identity directory")
    .requiredOption('--gateway <URL>', 'gateway base URL, e.g. ws://127.0.0.1:9220')
    .requiredOption('--trust <T>', 'a CA certificate (trusted for every role) or a trust-policy JSON file')
    .option('--crl <CRL.pem>', 'a CRL to load (repeatable)', collect, [])
    .option('--no-revocation-check', 'waive CRL checking (explicit opt-out; revocation otherwise fails closed)')
    .option('--role-policy <FILE>', 'override the default role policy (JSON)')
    .option('--gateway-key <B64U>', "pin the gateway's receipt key (base64url SPKI)")
    .option('--gateway-ca <PEM>', 'CA certificate of a wss:// gateway');
}

/** Connects as `ep` with the network options (--gateway, --gateway-key, --gateway-ca). */
export function connectAs(o: NetOpts, ep: Endpoint, more: Omit<ClientOptions, 'chain' | 'privateKey' | 'gatewayKey' | 'ca'> = {}): Promise<GatewayClient> {
  return GatewayClient.connect(o.gateway, {
    chain: ep.id.chain,
    privateKey: ep.id.privateKey,
    gatewayKey: o.gatewayKey,
    ca: o.gatewayCa ? readFileSync(o.gatewayCa, 'utf8') : undefined,
    ...more,
  });
}

/** Loads the endpoint, connects and publishes its bundle and one-time prekeys, so peers can reach it. */
export async function connect(o: NetOpts, handlers: { onMessage?: (d: Delivery) => void; onNotice?: (n: Notice) => void } = {}): Promise<{ ep: Endpoint; gw: GatewayClient }> {
  const ep = await loadEndpoint(o);
  const gw = await connectAs(o, ep, handlers);
  await gw.publishBundle(readFileSync(join(o.as, 'bundle.json'), 'utf8'));
  const otks = readPublicOneTime(o.as);
  if (otks.length > 0) await gw.publishPrekeys(otks.map(prekeyToJSON));
  return { ep, gw };
}

export function registerMessaging(program: Command): void {
  payloadOptions(netOptions(program.command('send').description("seal a payload to a recipient (its bundle comes from the gateway directory) and return once the gateway holds it durably")))
    .requiredOption('--to <ID>', 'recipient id')
    .option('--json', 'print the acceptance (seq, message id, receipt) as JSON')
    .action(async (o) => {
      const { ep, gw } = await connect(o);
      try {
        const bundle = await gw.getBundle(o.to);
        if (bundle === undefined) throw new EvsealError('ERR_NOT_FOUND', `no bundle for ${o.to} in the gateway directory`);
        const env = ep.seal(bundle, readInput(o.in), { kind: o.kind, contentType: o.contentType, lifetimeSec: o.lifetime });
        const r = await gw.sendEnvelope(env);
        if (r.receipt && !verifyReceipt(r.receipt, publicKeyFromB64u(gw.gateway.key, 'gateway key'), gw.gateway.id)) {
          throw new EvsealError('ERR_STATE', 'the gateway acknowledged with a receipt that does not verify');
        }
        const id = envelopeHeader(env).id;
        if (o.json) printJson({ to: o.to, id, seq: r.seq, duplicate: r.duplicate, receipt: r.receipt ?? null });
        else process.stdout.write(`accepted ${id} for ${o.to} (seq ${r.seq}${r.receipt ? `, audit index ${r.receipt.index}` : ''})\n`);
      } finally {
        await gw.close();
      }
    });

  netOptions(program.command('recv').description('receive, open and acknowledge sealed messages; each plaintext goes to its own file'))
    .option('--count <N>', 'stop after N messages', intArg)
    .option('--out-dir <DIR>', 'write each plaintext to DIR/<message id> (needed for exactly-once across crashes)')
    .option('--timeout <S>', 'give up after S seconds without the requested messages', intArg)
    .option('--json', 'print one JSON line per message (metadata only)')
    .action(async (o) => {
      if (o.outDir) mkdirSync(o.outDir, { recursive: true, mode: 0o700 });
      let done = 0;
      let failure: Error | undefined;
      let finish: () => void = () => {};
      const finished = new Promise<void>((r) => (finish = r));
      // Deliveries may arrive before connect() returns: they wait until it has.
      let ready: () => void = () => {};
      let chain = new Promise<void>((r) => (ready = r));
      const { ep, gw } = await connect(o, {
        // Deliveries are handled strictly one after another, in seq order.
        onMessage: (d) => {
          chain = chain.then(() => handle(d)).catch((e: unknown) => {
            failure = e as Error;
            finish();
          });
        },
      });
      ready();
      async function handle(d: Delivery): Promise<void> {
        if (o.count !== undefined && done >= o.count) return;
        if (d.format !== 'envelope') throw new EvsealError('ERR_USAGE', `recv handles envelopes; message ${d.id} is a ${d.format} message`);
        // Files are named by the envelope's own id (22 base64url characters, signed with the header), never by what the gateway says.
        let id: string;
        try {
          id = envelopeHeader(d.body).id;
        } catch {
          gw.nack(d.seq, 'malformed');
          process.stderr.write(`evseal: message ${d.id} from ${d.from} is not an envelope; reported to the gateway [ERR_OPEN_FAILED]\n`);
          return;
        }
        const path = o.outDir ? join(o.outDir, id) : undefined;
        let status = 'opened';
        if (path && existsSync(path)) {
          // Opened and stored before a crash: acknowledge again, never re-open.
          status = 'already-processed';
        } else {
          try {
            ep.open(d.body, {
              beforeCommit: (opened) => {
                if (path) writeFileAtomic(path, opened.plaintext, 0o600);
                else process.stdout.write(opened.plaintext);
              },
            });
          } catch (e) {
            if (!(e instanceof EvsealError) || e.code !== 'ERR_OPEN_FAILED') throw e;
            // Poison: the gateway retries it and dead-letters it after its attempt limit.
            gw.nack(d.seq, 'open-failed');
            process.stderr.write(`evseal: message ${d.id} from ${d.from} did not open; reported to the gateway [ERR_OPEN_FAILED]\n`);
            return;
          }
        }
        await gw.ack(d.seq);
        done++;
        const meta = { seq: d.seq, id, from: d.from, kind: d.kind, status, ...(path ? { file: path } : {}) };
        if (o.json) process.stdout.write(JSON.stringify(meta) + '\n');
        else if (path) process.stdout.write(`${status} ${id} from ${d.from} (${d.kind}) -> ${path}\n`);
        if (o.count !== undefined && done >= o.count) finish();
      }
      const timer = o.timeout ? setTimeout(finish, o.timeout * 1000) : undefined;
      await finished;
      if (timer) clearTimeout(timer);
      await gw.close();
      if (failure) throw failure;
      if (o.count !== undefined && done < o.count) throw new EvsealError('ERR_STATE', `timed out after ${done} of ${o.count} messages`);
    });
}

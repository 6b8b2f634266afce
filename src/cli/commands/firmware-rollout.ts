import { createHash } from 'node:crypto';
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GatewayClient, type Delivery, type Notice, type RolloutEvent, type RolloutState } from '../../client/gateway-client.js';
import { uploadFirmware } from '../../client/firmware-upload.js';
import { EvsealError } from '../../core/errors.js';
import { readPackageIndex } from '../../firmware/package.js';
import { PACKAGE_ID_RE } from '../../gateway/firmware/packages.js';
import { INSTALLED, isTerminal } from '../../gateway/firmware/rollouts.js';
import { intArg } from '../options.js';
import { printJson, readInput } from '../io.js';
import { connectAs, netOptions } from './messaging.js';
import { loadEndpoint } from './envelope.js';
import { progressBar } from './firmware.js';

/** --stations FILE: station ids, one per line ('#' comments), or a JSON array of ids. */
function stationsFile(path: string): string[] {
  const text = readInput(path).toString('utf8');
  if (text.trimStart().startsWith('[')) {
    const v = JSON.parse(text) as unknown;
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new EvsealError('ERR_USAGE', `${path}: a JSON stations file is an array of ids`);
    return v;
  }
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

/** How far along a status is (OCPP 2.0.1 L01 / 1.6 whitepaper order); final statuses are furthest. */
const ORDER = ['Queued', 'Accepted', 'DownloadScheduled', 'Downloading', 'DownloadPaused', 'Downloaded', 'SignatureVerified', 'InstallScheduled', 'Installing', 'InstallRebooting'];
function progress(status: string): number {
  return isTerminal(status) ? ORDER.length : ORDER.indexOf(status);
}

/** The same package to the same stations is the same rollout: running the command again follows it instead of starting another. */
function rolloutId(packageId: string, stations: string[] | undefined): string {
  const h = createHash('sha256').update(`evseal rollout\0${packageId}\0`);
  if (stations) for (const s of [...new Set(stations)].sort()) h.update(`${s}\0`);
  else h.update('*all*');
  return h.digest('base64url').slice(0, 22);
}

export function registerRollout(fw: Command): void {
  netOptions(fw.command('rollout'))
    .description(
      'upload a package to the gateway and have it send UpdateFirmware (OCPP 2.0.1/2.1) or SignedUpdateFirmware (1.6) to each station, then follow every station to Installed or a failure (--as the operator\'s provisioning identity)',
    )
    .requiredOption('--package <P>', 'full firmware package (evseal firmware pack)')
    .option('--stations <FILE>', 'station ids, one per line or a JSON array')
    .option('--all', 'every device the package has a key slot for')
    .option('--id <ID>', 'rollout id (default: derived from the package and the stations, so a rerun follows the same rollout)')
    .option('--lifetime <S>', 'how long the calls wait for offline stations (seconds)', intArg, 86400)
    .option('--timeout <S>', 'stop following after S seconds; stations still pending count as not done', intArg)
    .option('--no-wait', 'start the rollout and print its state without following it')
    .option('--json', 'print the final state as JSON')
    .action(async (o) => {
      if (Boolean(o.all) === (o.stations !== undefined)) throw new EvsealError('ERR_USAGE', 'give exactly one of --stations FILE or --all');
      const stations = o.stations ? stationsFile(o.stations) : undefined;
      if (stations?.length === 0) throw new EvsealError('ERR_USAGE', `${o.stations} names no station`);
      const index = await readPackageIndex(o.package);
      const id: string = o.id ?? rolloutId(index.packageId, stations);

      // What the client sees: statuses from the gateway's rollout events, plus
      // the stations' answers to the call (ocpp-result) and expiry notices.
      const status = new Map<string, string>();
      const security = new Map<string, string[]>();
      const byMsgId = new Map<string, string>();
      const early: (() => void)[] = [];
      let wake: () => void = () => {};
      const say = (line: string): void => {
        if (!o.json) process.stdout.write(line + '\n');
      };
      const set = (station: string, s: string): void => {
        const cur = status.get(station);
        if (cur === s || (cur !== undefined && isTerminal(cur))) return; // final is final
        status.set(station, s);
        say(`${station}: ${s}`);
        wake();
      };
      const onRolloutEvent = (e: RolloutEvent): void => {
        if (e.id !== id) return;
        if (e.status !== undefined) set(e.station, e.status);
        if (e.security !== undefined) {
          security.set(e.station, [...(security.get(e.station) ?? []), e.security]);
          say(`${e.station}: security event ${e.security}`);
        }
      };
      let gwRef: GatewayClient | undefined;
      const onMessage = (d: Delivery): void => {
        const handle = (): void => {
          if (d.format === 'ocpp-result' && d.kind === 'firmware') {
            const r = JSON.parse(d.body) as { inReplyTo?: string; result?: { status?: string } };
            const station = byMsgId.get(r.inReplyTo ?? '');
            if (station !== undefined) {
              const s = r.result?.status ?? 'Rejected';
              // Accepted only moves a station on from Queued: its notifications may already have overtaken the answer
              if (s !== 'Accepted' && s !== 'AcceptedCanceled') set(station, s);
              else if (status.get(station) === 'Queued') set(station, 'Accepted');
            }
          }
          // durably seen (or not ours to handle): acknowledge so the gateway stops redelivering
          void gwRef?.ack(d.seq).catch(() => undefined);
        };
        if (byMsgId.size === 0) early.push(handle);
        else handle();
      };
      const onNotice = (n: Notice): void => {
        const station = byMsgId.get(n.id);
        if (station !== undefined) set(station, n.type === 'expired' ? 'Expired' : 'Undeliverable');
      };

      const ep = await loadEndpoint(o);
      // the upload's commit and the rollout's start wait the client's long timeout (work that grows with the package and the stations)
      const gw = await connectAs(o, ep, { onMessage, onNotice, onRolloutEvent });
      gwRef = gw;
      // the stations' answers to the calls are routed back to this identity: the gateway must know it as a recipient
      await gw.publishBundle(readFileSync(join(o.as, 'bundle.json'), 'utf8'));
      try {
        const bar = progressBar('upload');
        const up = await uploadFirmware(gw, o.package, bar.update);
        bar.finish();
        say(up.sent === 0 ? `package ${index.packageId} already held by the gateway` : `uploaded ${index.packageId} (${up.size} bytes${up.resumedAt > 0 ? `, resumed at ${up.resumedAt}` : ''})`);

        const apply = (r: RolloutState): void => {
          for (const [station, s] of Object.entries(r.stations)) {
            if (s.msgId) byMsgId.set(s.msgId, station);
            if (s.securityEvents && s.securityEvents.length > (security.get(station)?.length ?? 0)) security.set(station, s.securityEvents);
            // a snapshot may be older than the events already seen (they share the connection, but not the turn they are handled in)
            const cur = status.get(station);
            if (cur === undefined || progress(s.status) > progress(cur)) set(station, s.status);
          }
        };
        const r = await gw.startRollout({ id, packageId: index.packageId, ...(stations ? { stations } : {}), lifetimeSec: o.lifetime });
        say(`rollout ${id}: ${index.model} ${index.version} to ${Object.keys(r.stations).length} station(s), calls wait until ${new Date(r.expires).toISOString()}`);
        apply(r);
        for (const h of early.splice(0)) h();

        const deadline = o.timeout === undefined ? Infinity : Date.now() + o.timeout * 1000;
        const pending = (): string[] => [...status].filter(([, s]) => !isTerminal(s)).map(([st]) => st);
        while (o.wait && pending().length > 0 && Date.now() < deadline) {
          // events arrive as they happen; the state is re-read now and then in case one was missed
          await new Promise<void>((res) => {
            const t = setTimeout(res, Math.min(5000, deadline - Date.now()));
            wake = () => {
              clearTimeout(t);
              res();
            };
          });
          if (pending().length > 0) apply(await gw.rolloutStatus(id));
        }

        const result = Object.fromEntries([...status].map(([st, s]) => [st, { status: s, done: isTerminal(s), ok: s === INSTALLED, ...(security.has(st) ? { securityEvents: security.get(st) } : {}) }]));
        const failed = [...status.values()].filter((s) => isTerminal(s) && s !== INSTALLED).length;
        const open = pending().length;
        if (o.json) printJson({ rollout: id, packageId: index.packageId, version: index.version, model: index.model, stations: result, installed: status.size - failed - open, failed, pending: open });
        else say(`${status.size - failed - open} installed, ${failed} failed, ${open} pending`);
        if (failed > 0) throw new EvsealError('ERR_STATE', `${failed} of ${status.size} station(s) failed`);
        if (open > 0 && o.wait) throw new EvsealError('ERR_STATE', `timed out with ${open} station(s) pending`);
      } finally {
        await gw.close();
      }
    });
}

export function registerDelete(fw: Command): void {
  netOptions(fw.command('delete'))
    .description("delete a package the gateway holds (and any partial upload of it); refused while a rollout may still send a station to it (--as an identity that may roll out firmware)")
    .option('--package <P>', 'the package file (its id is read from it)')
    .option('--package-id <HEX>', 'the package id (32 hex digits), when the file is not at hand')
    .option('--force', 'delete even while a rollout needs it (its stations then fail to download)')
    .option('--json', 'print {"packageId","deleted"}')
    .action(async (o) => {
      if ((o.package === undefined) === (o.packageId === undefined)) throw new EvsealError('ERR_USAGE', 'give exactly one of --package FILE or --package-id HEX');
      if (o.packageId !== undefined && !PACKAGE_ID_RE.test(o.packageId)) throw new EvsealError('ERR_USAGE', '--package-id must be 32 lowercase hex digits');
      const packageId: string = o.packageId ?? (await readPackageIndex(o.package)).packageId;
      const gw = await connectAs(o, await loadEndpoint(o));
      try {
        const deleted = await gw.firmwareDelete(packageId, { force: o.force === true });
        if (o.json) printJson({ packageId, deleted });
        else process.stdout.write(deleted ? `deleted package ${packageId}\n` : `package ${packageId} was not held\n`);
      } finally {
        await gw.close();
      }
    });
}

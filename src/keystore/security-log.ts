import { join } from 'node:path';
import { pino } from 'pino';
import type { SecuritySink } from '../core/errors.js';

/**
 * The endpoint's security log: one JSON line per refused input with the
 * precise reason that the caller-facing error deliberately hides. It never
 * receives plaintext or key material (the core passes only reasons and ids).
 */
export function securityLog(dir: string): { sink: SecuritySink; flush: () => void } {
  const dest = pino.destination({ dest: join(dir, 'security.log'), sync: true, mkdir: true });
  const log = pino({ base: { component: 'evseal-security' }, timestamp: pino.stdTimeFunctions.isoTime }, dest);
  return {
    sink: (e) => log.warn(e, e.event),
    flush: () => dest.flushSync(),
  };
}

/**
 * Crash-test points. When EVSEAL_FAULT names one of them the process kills
 * itself there with SIGKILL, as a power cut would; the crash-safety tests use
 * this to stop an endpoint between two steps. Unset, it does nothing.
 */
export type FaultPoint = 'session-encrypt:before-save' | 'session-decrypt:before-save';

export function faultPoint(name: FaultPoint): void {
  if (process.env.EVSEAL_FAULT === name) process.kill(process.pid, 'SIGKILL');
}

// Real gateway processes (the built CLI, dist/) in cluster mode: each node
// shares the test's PostgreSQL schema, JetStream stream and gateway key.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { deleteStream } from '../../src/gateway/cluster/bus.js';

export const CLI = join(process.cwd(), 'dist', 'cli', 'main.js');

export interface ClusterConfig {
  storeUrl: string;
  natsUrl: string;
  stream: string;
  prefix: string;
  /** holds gateway-key.pem, the same for every node */
  keyDir: string;
  trust: string;
  crl: string;
  env: NodeJS.ProcessEnv;
}

export interface Node {
  proc: ChildProcess;
  url: string;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** `o.dataDir`: the node's own --data (holding a copy of the key) instead of the shared keyDir; `o.listen`: host:port (default a free port); `o.args`: more options. */
export function startNode(c: ClusterConfig, name: string, o: { dataDir?: string; listen?: string; args?: string[] } = {}): Promise<Node> {
  const args = [CLI, 'gateway', '--listen', o.listen ?? '127.0.0.1:0', '--data', o.dataDir ?? c.keyDir, '--trust', c.trust, '--crl', c.crl, '--store', c.storeUrl, '--bus', c.natsUrl, '--bus-stream', c.stream, '--bus-prefix', c.prefix, ...(o.args ?? [])];
  const proc = spawn(process.execPath, args, { env: c.env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const kill = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    await exited;
  };
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`node ${name} did not start: ${out}`));
    }, 20_000);
    proc.stderr!.on('data', (b: Buffer) => (out += b.toString()));
    proc.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /"url":"(ws:\/\/[^"]+)"/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, url: m[1]!, kill });
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`node ${name} exited ${code}: ${out}`));
    });
  });
}

export function cli(env: NodeJS.ProcessEnv, args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** The end of a cluster test: its nodes killed, then its PostgreSQL schema and JetStream stream removed. */
export async function stopCluster(nodes: Node[], made: { schema: { drop(): Promise<void> }; natsUrl: string; stream: string } | undefined): Promise<void> {
  for (const n of nodes) await n.kill('SIGKILL');
  if (made) {
    await made.schema.drop();
    await deleteStream(made.natsUrl, made.stream);
  }
}

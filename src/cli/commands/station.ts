import type { Command } from 'commander';
import { withAdminStore } from '../../gateway/cluster/open-store.js';
import { addStation, listStations } from '../../gateway/stations.js';
import { printJson, readInput, wallClock } from '../io.js';

export function registerStation(program: Command): void {
  const station = program.command('station').description('charging stations allowed to connect to the gateway over OCPP');

  station
    .command('add')
    .description('register a station (or replace its credentials); with neither --password nor --cert a password is generated and printed once')
    .option('--data <DIR>', 'gateway data directory (DIR/evseal.db)')
    .option('--store <URL>', 'a cluster\'s PostgreSQL store (postgres://…), instead of --data')
    .requiredOption('--id <ID>', 'station id (the OCPP identity, and the charger\'s evseal id)')
    .option('--password <P>', 'Basic-auth password for security profiles 1 and 2 (at least 16 characters); only its scrypt hash is stored')
    .option('--cert <CERT.pem>', 'the station\'s TLS client certificate, bound by fingerprint (security profile 3)')
    .option('--json', 'print the result as JSON')
    .action(async (o) => {
      const certPem = o.cert === undefined ? undefined : readInput(o.cert).toString('utf8');
      const r = await withAdminStore(o, (s) => addStation(s, { id: o.id, password: o.password, certPem }, wallClock()()));
      if (o.json) {
        printJson({ ...r.station, updated: r.updated, ...(r.generatedPassword ? { generatedPassword: r.generatedPassword } : {}) });
        return;
      }
      const auth = [r.station.password ? 'password' : '', r.station.certFingerprint ?? ''].filter(Boolean).join(', ');
      process.stdout.write(`${r.updated ? 'updated' : 'added'} station ${r.station.id} (${auth})\n`);
      if (r.generatedPassword) process.stdout.write(`password: ${r.generatedPassword}\n`);
    });

  station
    .command('list')
    .description('list registered stations (never their password hashes)')
    .option('--data <DIR>', 'gateway data directory (DIR/evseal.db)')
    .option('--store <URL>', 'a cluster\'s PostgreSQL store (postgres://…), instead of --data')
    .option('--json', 'print the stations as JSON')
    .action(async (o) => {
      const list = await withAdminStore(o, (s) => listStations(s));
      if (o.json) {
        printJson(list);
        return;
      }
      for (const s of list) {
        const auth = [s.password ? 'password' : '', s.certFingerprint ?? ''].filter(Boolean).join(', ');
        process.stdout.write(`${s.id}\t${auth}\t${s.created}\n`);
      }
    });
}

// A station's firmware report as one cluster node publishes it for the
// others (cluster/bus.ts): what parseStationReport takes and what it
// refuses. The round trip through two real nodes is tests/cluster/firmware.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseStationReport, type StationReport } from '../../src/gateway/firmware/rollouts.js';

test('reports round-trip through their JSON', () => {
  const reports: StationReport[] = [
    { station: 'CP-1', status: 'Downloading', requestId: 42 },
    { station: 'CP-1', status: 'Installed' },
    { station: 'CP.2:x_y-z', security: 'InvalidFirmwareSignature' },
  ];
  for (const r of reports) assert.deepEqual(parseStationReport(JSON.stringify(r)), r);
});

test('anything else is refused', () => {
  const bad = [
    'not json',
    'null',
    '[]',
    '{}',
    JSON.stringify({ station: 'CP 1', status: 'Installed' }), // not a station id
    JSON.stringify({ station: 'x'.repeat(65), status: 'Installed' }),
    JSON.stringify({ station: 'CP-1' }),
    JSON.stringify({ station: 'CP-1', status: '' }),
    JSON.stringify({ station: 'CP-1', status: 'x'.repeat(65) }),
    JSON.stringify({ station: 'CP-1', status: 7 }),
    JSON.stringify({ station: 'CP-1', status: 'Installed', requestId: 1.5 }),
    JSON.stringify({ station: 'CP-1', status: 'Installed', requestId: '1' }),
    JSON.stringify({ station: 'CP-1', status: 'Installed', security: 'X' }), // one or the other
    JSON.stringify({ station: 'CP-1', security: 'X', requestId: 1 }),
    JSON.stringify({ station: 'CP-1', status: 'Installed', extra: 1 }),
  ];
  for (const t of bad) assert.equal(parseStationReport(t), undefined, t);
});

// The endpoint-protocol frames of firmware upload, deletion and rollouts, as the
// gateway's boundary parser takes or refuses them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseClientFrame } from '../../src/gateway/endpoint/frames.js';
import { EvsealError } from '../../src/core/errors.js';

const PID = '0123456789abcdef0123456789abcdef';
const refused = (f: unknown) => assert.throws(() => parseClientFrame(JSON.stringify(f)), (e: EvsealError) => e.code === 'ERR_INVALID_INPUT', JSON.stringify(f));

test('well-formed firmware and rollout frames parse', () => {
  assert.deepEqual(parseClientFrame(JSON.stringify({ t: 'firmware-held', ref: 1, packageId: PID })), { t: 'firmware-held', ref: 1, packageId: PID });
  parseClientFrame(JSON.stringify({ t: 'firmware-chunk', ref: 2, packageId: PID, size: 10, offset: 0, data: 'AAEC' }));
  parseClientFrame(JSON.stringify({ t: 'firmware-commit', ref: 3, packageId: PID, sha256: 'A'.repeat(43) }));
  parseClientFrame(JSON.stringify({ t: 'rollout', ref: 4, id: 'r1', packageId: PID, stations: ['CP-1'], lifetime: 60 }));
  parseClientFrame(JSON.stringify({ t: 'rollout', ref: 5, id: 'r1', packageId: PID, all: true, lifetime: 60 }));
  parseClientFrame(JSON.stringify({ t: 'rollout-status', ref: 6, id: 'r1' }));
  assert.deepEqual(parseClientFrame(JSON.stringify({ t: 'firmware-delete', ref: 7, packageId: PID })), { t: 'firmware-delete', ref: 7, packageId: PID });
  assert.deepEqual(parseClientFrame(JSON.stringify({ t: 'firmware-delete', ref: 8, packageId: PID, force: true })), { t: 'firmware-delete', ref: 8, packageId: PID, force: true });
});

test('malformed ones are refused at the boundary', () => {
  refused({ t: 'firmware-held', ref: 1, packageId: PID, extra: 1 });
  refused({ t: 'firmware-chunk', ref: 2, packageId: PID, size: 10, offset: -1, data: 'AA' });
  refused({ t: 'firmware-chunk', ref: 2, packageId: PID, size: 10, offset: 0 });
  refused({ t: 'firmware-commit', ref: 3, packageId: 7, sha256: 'x' });
  refused({ t: 'rollout', ref: 4, id: 'r1', packageId: PID, lifetime: 60 }); // neither stations nor all
  refused({ t: 'rollout', ref: 4, id: 'r1', packageId: PID, stations: ['CP-1'], all: true, lifetime: 60 }); // both
  refused({ t: 'rollout', ref: 4, id: 'r1', packageId: PID, all: false, lifetime: 60 });
  refused({ t: 'rollout', ref: 4, id: 'r1', packageId: PID, all: 'yes', lifetime: 60 });
  refused({ t: 'rollout', ref: 4, id: 'r1', packageId: PID, stations: [1], lifetime: 60 });
  refused({ t: 'rollout-status', ref: 6 });
  refused({ t: 'firmware-delete', ref: 7, packageId: PID, force: 'yes' });
  refused({ t: 'firmware-delete', ref: 7 });
});

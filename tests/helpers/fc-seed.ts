// Loaded before every test file (scripts/run-tests.mjs): fixes fast-check's
// seed so property tests are deterministic. Override with FC_SEED to explore.
import fc from 'fast-check';

fc.configureGlobal({ seed: Number(process.env.FC_SEED ?? 20261126) });

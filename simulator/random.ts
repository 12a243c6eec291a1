/**
 * Seeded randomness for the simulator. Every image is a pure function of its seed, so the
 * same seed gives the same bytes on every run (the dataset and the tests rely on it).
 * Math.random is never used here. The generators are crystalwatch's one set, in
 * src/model/rng.ts (the simulator may import src/; stages may not import the simulator).
 */
export { Rng, mixSeed, xorshift32 } from '../src/model/rng.js';

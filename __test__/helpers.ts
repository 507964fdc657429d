// Small helpers shared by the vitest suites.

/** Runs `f` and returns what it threw; fails the test if it did not throw. */
export function caught(f: () => unknown): unknown {
  try {
    f()
  } catch (e) {
    return e
  }
  throw new Error('expected the call to throw')
}

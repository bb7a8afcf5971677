/** Three-axis values as tuples (x, y, z), so that per-axis code needs no unchecked reads. */
export type V3<T = number> = [T, T, T];
export const AXES = [0, 1, 2] as const;
/** One value per axis, as a tuple. */
export const perAxis = <T>(f: (a: 0 | 1 | 2) => T): V3<T> => [f(0), f(1), f(2)];

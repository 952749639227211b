/** The piscina task of thread-hop.ts: returns its argument, nothing else. */
export default function noop(x: number): number {
  return x;
}

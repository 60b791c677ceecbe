// The parts of autocannon 8 (which ships no types) that the benchmark uses.
declare module 'autocannon' {
  interface Histogram {
    p50: number;
    p97_5: number;
    p99: number;
  }
  interface Result {
    '2xx': number;
    non2xx: number;
    errors: number;
    timeouts: number;
    duration: number;
    latency: Histogram;
  }
  interface Options {
    url: string;
    connections?: number;
    amount?: number;
    duration?: number;
    timeout?: number;
    requests?: {
      setupRequest?: (request: never, context: never) => unknown;
      onResponse?: (status: number, body: string, context: never) => void;
    }[];
  }
  export default function autocannon(options: Options): Promise<Result>;
}

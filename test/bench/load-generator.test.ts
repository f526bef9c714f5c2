import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { runLoad } from '../../bench/load-generator';

/**
 * The bench's open-loop generator against a real HTTP server on loopback. What is proved is
 * its accounting, with no bound on how fast this (shared, loaded) machine answers: every
 * scheduled request is sent and counted once, latency is charged from the intended send time
 * (so it is never below the service time), and a server stall is charged to every request
 * scheduled during it (coordinated omission), which a closed-loop tool would hide. The stall
 * bounds below are derived from the stall the server measured itself, not from a clock budget.
 */
describe('bench load generator', () => {
  let server: http.Server;
  let origin: string;
  let received = 0;
  /** The 1-based arrival number whose response the server holds (0: none), and for how long. */
  let holdArrival = 0;
  let holdMs = 0;
  /** How long the held response was actually held, measured by the server. */
  let heldMs = 0;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const arrival = ++received;
      req.resume();
      req.on('end', () => {
        const answer = (): void => {
          res.writeHead(200, { 'content-length': '16' });
          res.end('0123456789abcdef');
        };
        if (arrival !== holdArrival) return answer();
        const since = process.hrtime.bigint();
        setTimeout(() => {
          heldMs = Number(process.hrtime.bigint() - since) / 1e6;
          answer();
        }, holdMs);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  beforeEach(() => {
    received = 0;
    holdArrival = 0;
    heldMs = 0;
  });

  test('sends and counts every scheduled request once, and charges latency from the intended send time', async () => {
    const rate = 200;
    const result = await runLoad({ origin, rate, warmupSeconds: 0.25, durationSeconds: 1, connections: 8, requestBytes: 64 });
    expect(result.scheduled).toBe(200);
    expect(result.ok).toBe(200);
    expect(result.errors).toBe(0);
    expect(result.errorKinds).toEqual({});
    // Warm-up requests are sent too, and nothing twice.
    expect(received).toBe(250);
    // The window is at least the scheduled duration (it ends at the later of the schedule's end
    // and the last response), so the achieved rate can never exceed the offered one; a
    // generator that sent faster than its schedule would.
    expect(result.achievedRps).toBeGreaterThan(0);
    expect(result.achievedRps).toBeLessThanOrEqual(rate);
    // latency = send lag + service time for each request, and the lag is never negative (no
    // request leaves before its intended time): every percentile of latency is at least the
    // same percentile of service time, and the means add up.
    for (const q of ['p50', 'p90', 'p99', 'p999', 'max'] as const) {
      expect(result.latencyMs[q]).toBeGreaterThanOrEqual(result.serviceTimeMs[q]);
    }
    expect(result.sendLagMs.mean).toBeGreaterThanOrEqual(0);
    expect(result.latencyMs.mean).toBeCloseTo(result.serviceTimeMs.mean + result.sendLagMs.mean, 6);
    // One recorded second, summarizing the same samples.
    expect(result.perSecond.map((s) => s.second)).toEqual([0]);
    expect(result.perSecond[0].max).toBe(Number(result.latencyMs.max.toFixed(3)));
  });

  test('charges a server stall to every request scheduled during it (no coordinated omission)', async () => {
    // One connection, so nothing gets past the held response: request k+n (n >= 1) is scheduled
    // n/rate after request k, which is before request k reached the server, and it cannot end
    // before request k's response is released. So its latency is at least held - n/rate. A
    // closed-loop generator (or one timing from the actual send) records one slow request.
    const rate = 200;
    const warmup = 50;
    const recorded = 300;
    holdArrival = warmup + 51; // recorded request #50 (0-based), the 101st to arrive
    holdMs = 300;
    const result = await runLoad({ origin, rate, warmupSeconds: warmup / rate, durationSeconds: recorded / rate, connections: 1, requestBytes: 64 });
    expect(result.scheduled).toBe(recorded);
    expect(result.ok).toBe(recorded);
    expect(received).toBe(warmup + recorded);
    expect(heldMs).toBeGreaterThan(0);

    /** How many recorded requests are guaranteed a latency of at least `x` ms: the held one and those after it. */
    const atLeast = (x: number): number => 1 + Math.min(Math.floor((rate * (heldMs - x)) / 1000), recorded - 51);
    /** Nearest rank: percentile q of n samples is >= x when at least n - ceil(q n) + 1 samples are. */
    const needed = (q: number): number => recorded - Math.ceil(q * recorded) + 1;

    expect(result.latencyMs.max).toBeGreaterThanOrEqual(heldMs);
    // p99 needs 4 samples: the held request and the 3 scheduled within 15 ms after it.
    expect(atLeast(heldMs - 15)).toBeGreaterThanOrEqual(needed(0.99));
    expect(result.latencyMs.p99).toBeGreaterThanOrEqual(heldMs - 15);
    // p90 needs 31: at 200 rps a stall of 300 ms or more covers at least 41 within 2/3 of it.
    expect(atLeast(heldMs / 3)).toBeGreaterThanOrEqual(needed(0.9));
    expect(result.latencyMs.p90).toBeGreaterThanOrEqual(heldMs / 3);
  });

  test('counts connection failures as errors instead of dropping them', async () => {
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const result = await runLoad({ origin: `http://127.0.0.1:${port}`, rate: 50, warmupSeconds: 0, durationSeconds: 0.5, drainSeconds: 2 });
    expect(result.scheduled).toBe(25);
    expect(result.ok).toBe(0);
    expect(result.errors).toBe(25);
    expect(result.errorKinds.ECONNREFUSED).toBe(25);
  });
});

import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { runLoad } from '../../bench/load-generator';

/**
 * The bench's open-loop generator against a real HTTP server on loopback: it must hold the
 * rate, and it must charge a server stall to every request scheduled during the stall
 * (coordinated omission), which a closed-loop tool would hide.
 */
describe('bench load generator', () => {
  let server: http.Server;
  let origin: string;
  let stallUntil = 0;
  let received = 0;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      received++;
      req.resume();
      req.on('end', () => {
        const answer = (): void => {
          res.writeHead(200, { 'content-length': '16' });
          res.end('0123456789abcdef');
        };
        const wait = stallUntil - Date.now();
        if (wait > 0) setTimeout(answer, wait);
        else answer();
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
    stallUntil = 0;
    received = 0;
  });

  test('holds a fixed rate and records every request of the window', async () => {
    const result = await runLoad({ origin, rate: 200, warmupSeconds: 0.25, durationSeconds: 1, connections: 8, requestBytes: 64 });
    expect(result.scheduled).toBe(200);
    expect(result.ok).toBe(200);
    expect(result.errors).toBe(0);
    expect(received).toBe(250);
    // achievedRps divides by the time until the LAST response, so on a loaded machine (jest runs
    // two test files at once on two cores) a late tail lowers it: 179.8 was seen in CI. The bounds
    // only catch a generator that sends at the wrong rate (e.g. half or double); exact figures are
    // the benchmark's business, not a test's.
    expect(result.achievedRps).toBeGreaterThan(140);
    expect(result.achievedRps).toBeLessThan(220);
    expect(result.latencyMs.p50).toBeLessThan(50);
  });

  test('charges a 300 ms stall to every request scheduled during it', async () => {
    // Stall the server 0.5 s into the recorded window. At 200 rps, ~60 of 300 recorded requests
    // are scheduled inside the stall; measured from their intended send times their latencies
    // spread from ~300 ms down to ~0, so p99 is near 300 ms and p90 well above the normal.
    const warmupSeconds = 0.25;
    setTimeout(() => {
      stallUntil = Date.now() + 300;
    }, (warmupSeconds + 0.5) * 1000);
    // One connection: a closed-loop client would send nothing during the stall and record one slow request.
    const result = await runLoad({ origin, rate: 200, warmupSeconds, durationSeconds: 1.5, connections: 1, requestBytes: 64 });
    expect(result.ok).toBe(300);
    expect(result.latencyMs.p99).toBeGreaterThan(200);
    expect(result.latencyMs.p90).toBeGreaterThan(50);
    // No bound on p50: with one connection the backlog after the stall drains at the machine's
    // pace, and a loaded CI machine charged the median 103 ms and 252 ms in two runs. What this
    // test proves, that a stall is charged to every request scheduled during it (a closed-loop
    // generator would record one slow request and fail the p99/p90 bounds), needs no median.
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

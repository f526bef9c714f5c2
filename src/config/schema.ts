/**
 * The contract between the constructs and the sidecar: one versioned document, the
 * sidecar's config. The constructs write it into a ConfigMap; the proxy reads and
 * validates it. Types and runtime validation come from this one zod schema, so the two
 * sides cannot drift. Durations are integer milliseconds (`...Ms`), percentages are
 * numbers from 0 to 100, and every object is strict: an unknown field is an error, so a
 * typo in a hand-edited config is caught instead of silently ignored.
 */
import { z } from 'zod';
import { PROXY_ADMIN_PORT, PROXY_INBOUND_PORT, PROXY_OUTBOUND_PORT } from './pod-contract';

/** The apiVersion this schema describes. */
export const SIDECAR_CONFIG_API_VERSION = 'typemesh.io/v1alpha1';
/** The kind this schema describes. */
export const SIDECAR_CONFIG_KIND = 'SidecarConfig';

/** DNS-1123 label: lower-case alphanumerics and '-', at most 63 characters. */
export const DNS_1123_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** A SPIFFE ID: spiffe://<trust-domain>/<path>. */
export const SPIFFE_ID = /^spiffe:\/\/[a-z0-9.-]+(\/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+$/;

const name = z.string().regex(DNS_1123_LABEL, 'must be a DNS-1123 label (lower-case letters, digits and "-", at most 63 characters)');
const port = z.number().int().min(1).max(65535);
const durationMs = z.number().int().min(0);

/** The drain window when `drainDurationMs` is unset: Istio's terminationDrainDuration default. */
export const DEFAULT_DRAIN_DURATION_MS = 5000;
/** How long a draining sidecar waits for the app's connections and the requests in flight when `drainTimeoutMs` is unset. */
export const DEFAULT_DRAIN_TIMEOUT_MS = 5000;
const positiveDurationMs = z.number().int().min(1);
const percentage = z.number().min(0).max(100);
const spiffeId = z.string().regex(SPIFFE_ID, 'must be a SPIFFE ID such as spiffe://cluster.local/ns/shop/sa/payment');
const httpMethod = z.enum(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'CONNECT', 'TRACE']);
const regex = z.string().min(1).refine((s) => {
  try {
    new RegExp(s);
    return true;
  } catch {
    return false;
  }
}, 'must be a valid regular expression');

/** How a string is matched: exactly one of exact, prefix or regex. */
export const StringMatchSchema = z.union([
  z.strictObject({ exact: z.string() }),
  z.strictObject({ prefix: z.string() }),
  z.strictObject({ regex }),
]);

/** A header condition of a route match. */
export const HeaderMatchSchema = z.strictObject({
  /** Header name, matched case-insensitively. */
  name: z.string().min(1).transform((s) => s.toLowerCase()),
  exact: z.string().optional(),
  prefix: z.string().optional(),
  regex: regex.optional(),
  /** true: the header must be present (any value); false: it must be absent. */
  present: z.boolean().optional(),
}).refine((h) => [h.exact, h.prefix, h.regex, h.present].filter((v) => v !== undefined).length === 1, {
  message: 'a header match needs exactly one of exact, prefix, regex or present',
});

/** One match of a route: all given conditions must hold. */
export const RouteMatchSchema = z.strictObject({
  path: StringMatchSchema.optional(),
  method: httpMethod.optional(),
  headers: z.array(HeaderMatchSchema).optional(),
});

/** The conditions on which a request is retried. */
export const RetryOnSchema = z.enum([
  '5xx', 'gateway-error', 'reset', 'connect-failure', 'retriable-4xx', 'retriable-status-codes',
  // gRPC status conditions (read from grpc-status in headers or trailers).
  'cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable',
]);

/** The methods a retry policy with idempotentOnly retries: the idempotent methods of RFC 9110. */
export const IDEMPOTENT_METHODS: readonly string[] = ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE'];

/** Retries of a route. */
export const RetryPolicySchema = z.strictObject({
  /** Retries after the first try (0 disables retries). */
  attempts: z.number().int().min(0).max(10),
  /** Timeout of each try; 0 means only the route timeout applies. */
  perTryTimeoutMs: durationMs.default(0),
  retryOn: z.array(RetryOnSchema).min(1),
  /** Status codes retried when retryOn has 'retriable-status-codes'. */
  retriableStatusCodes: z.array(z.number().int().min(100).max(599)).default([]),
  backoff: z.strictObject({
    baseIntervalMs: positiveDurationMs.default(25),
    maxIntervalMs: positiveDurationMs.default(250),
  }).default({ baseIntervalMs: 25, maxIntervalMs: 250 }),
  /** Retry budget: retries may add at most this percentage of requests, plus a floor per second. */
  budget: z.strictObject({
    percent: percentage.default(20),
    minRetriesPerSecond: z.number().int().min(0).default(10),
  }).default({ percent: 20, minRetriesPerSecond: 10 }),
  /**
   * Retry only idempotent methods (GET, HEAD, OPTIONS, PUT, DELETE, TRACE). Off by default:
   * retryOn applies to a route's requests whatever the method, as in Envoy and Istio. Set it
   * when a retried POST or PATCH could do its work twice (no idempotency keys upstream).
   */
  idempotentOnly: z.boolean().default(false),
  /**
   * Largest request body buffered so that it can be replayed (Envoy's per_request_buffer_limit
   * is of this size); a larger body is streamed, and its request is not retried (flag RBL).
   */
  maxBufferedBodyBytes: z.number().int().min(0).default(65536),
});

/** Fault injection of a route. */
export const FaultSchema = z.strictObject({
  delay: z.strictObject({ fixedDelayMs: positiveDurationMs, percentage }).optional(),
  abort: z.strictObject({
    httpStatus: z.number().int().min(200).max(599),
    percentage,
  }).optional(),
});

/** Header rewrites: set replaces, add appends, remove deletes. */
export const HeaderRewriteSchema = z.strictObject({
  set: z.record(z.string(), z.string()).optional(),
  add: z.record(z.string(), z.string()).optional(),
  remove: z.array(z.string()).optional(),
});

/** A weighted destination of a route. */
export const WeightedSubsetSchema = z.strictObject({
  subset: name,
  weight: z.number().int().min(0).max(100),
});

/** An ordered route of a destination service. */
export const RouteSchema = z.strictObject({
  name,
  /** Any one match selects the route; an empty or missing list matches every request. */
  match: z.array(RouteMatchSchema).default([]),
  destinations: z.array(WeightedSubsetSchema).min(1),
  /** Whole-request timeout including retries; 0 disables it. */
  timeoutMs: durationMs.default(15000),
  retries: RetryPolicySchema.optional(),
  fault: FaultSchema.optional(),
  mirror: z.strictObject({ subset: name, percentage }).optional(),
  headers: z.strictObject({
    request: HeaderRewriteSchema.optional(),
    response: HeaderRewriteSchema.optional(),
  }).optional(),
});

/** Where the endpoints of a subset come from. */
export const DiscoverySchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('dns'),
    /** The headless Service's DNS name; its A records are the pods. */
    hostname: z.string().min(1),
    port,
    refreshIntervalMs: positiveDurationMs.default(5000),
  }),
  z.strictObject({
    type: z.literal('static'),
    endpoints: z.array(z.strictObject({ address: z.string().min(1), port })).min(1),
  }),
]);

/** A version of a destination service. */
export const SubsetSchema = z.strictObject({
  name,
  labels: z.record(z.string(), z.string()).default({}),
  /** The identity every endpoint of this subset must present. */
  identity: spiffeId,
  discovery: DiscoverySchema,
});

/** A destination service as seen by the outbound listener. */
export const OutboundServiceSchema = z.strictObject({
  name,
  namespace: name,
  /** Host names (Host header, port stripped) that select this service. */
  hosts: z.array(z.string().min(1)).min(1),
  /** The service port the app calls. */
  port,
  /**
   * The destination's app port (one of its workload.appPorts) this service port reaches, named
   * in the SNI of the mTLS connection (src/proxy-image/target-port.ts) so that the peer's
   * sidecar forwards to that port. Unset: the peer's default app port (inbound.app.port).
   */
  targetPort: port.optional(),
  protocol: z.enum(['http', 'http2', 'grpc']).default('http'),
  subsets: z.array(SubsetSchema).min(1),
  routes: z.array(RouteSchema).min(1),
  loadBalancer: z.strictObject({
    policy: z.enum(['ROUND_ROBIN', 'LEAST_REQUEST']).default('LEAST_REQUEST'),
  }).default({ policy: 'LEAST_REQUEST' }),
  connectionPool: z.strictObject({
    maxConnections: z.number().int().min(1).default(1024),
    maxPendingRequests: z.number().int().min(0).default(1024),
    /** 0: unlimited. */
    maxRequestsPerConnection: z.number().int().min(0).default(0),
    connectTimeoutMs: positiveDurationMs.default(10000),
    idleTimeoutMs: positiveDurationMs.default(60000),
  }).default({ maxConnections: 1024, maxPendingRequests: 1024, maxRequestsPerConnection: 0, connectTimeoutMs: 10000, idleTimeoutMs: 60000 }),
  outlierDetection: z.strictObject({
    consecutive5xxErrors: z.number().int().min(0).default(5),
    consecutiveGatewayErrors: z.number().int().min(0).default(0),
    intervalMs: positiveDurationMs.default(10000),
    baseEjectionTimeMs: positiveDurationMs.default(30000),
    /**
     * Caps ejections per subset as in Envoy: an endpoint is ejected only while fewer than this
     * percentage of the subset's endpoints are ejected, so one endpoint can always be ejected
     * (unless 0) and the cap applies beyond it.
     */
    maxEjectionPercent: percentage.default(10),
  }).optional(),
});

/**
 * A TCP destination service (a database, Redis, Kafka): the app connects in plain TCP to
 * listenerPort on its sidecar's loopback (in a pod, the init step redirects the service port
 * there); the sidecar opens mTLS to a peer's inbound listener, verifies the subset's identity,
 * names targetPort in the SNI, and pipes bytes. No routes, retries or HTTP policies apply.
 */
export const TcpServiceSchema = z.strictObject({
  name,
  namespace: name,
  /** The service port the app calls. */
  port,
  /** The destination's app port (declared 'tcp' in its workload.appPorts). Unset: port. */
  targetPort: port.optional(),
  /** The outbound sidecar's own loopback listener for this service (one per TCP service). */
  listenerPort: port,
  /** Versions of the service; a connection goes to an endpoint of any of them, in turn. */
  subsets: z.array(SubsetSchema).min(1),
  connectTimeoutMs: positiveDurationMs.default(10000),
});

/** A host name of an external service: lower-case DNS name (no wildcard, no port). */
export const EXTERNAL_HOST = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const externalHost = z.string().regex(EXTERNAL_HOST, 'must be a lower-case DNS name such as api.example.com (no wildcard, no port)');

/**
 * A service outside the mesh that the app may call (an ExternalService; Istio's ServiceEntry).
 * The app speaks plain HTTP to its sidecar; the sidecar connects to the real host (found by
 * DNS) in plain TCP, or originates TLS and verifies the host's certificate against its name.
 * No mesh identity is involved: the external host is not a sidecar.
 */
export const ExternalServiceSchema = z.strictObject({
  name,
  /** Host names (Host header, port stripped) that select this service; also its metrics' destination_service (the first). */
  hosts: z.array(externalHost).min(1),
  /** The port the app calls. */
  port,
  /** 'http': plain TCP to the host; 'https': the sidecar originates TLS (the app still speaks plain HTTP). */
  protocol: z.enum(['http', 'https']).default('http'),
  /** https only: how the host's certificate is verified. */
  tls: z.strictObject({
    /** The name sent as SNI and checked against the certificate. Unset: the first host. */
    serverName: externalHost.optional(),
    /** PEM bundle of the CAs that may sign the host's certificate. Unset: the system CAs. */
    caFile: z.string().min(1).optional(),
  }).optional(),
  /** Where its endpoints come from: DNS of the real host (a cluster), static addresses (tests, the local runner). */
  discovery: DiscoverySchema,
  /** Whole-request timeout including retries; 0 disables it. */
  timeoutMs: durationMs.default(15000),
  retries: RetryPolicySchema.optional(),
  connectionPool: OutboundServiceSchema.shape.connectionPool,
  outlierDetection: OutboundServiceSchema.shape.outlierDetection,
});

/** An authorization rule of the inbound listener. All given fields must match; a list matches any item. */
export const AuthorizationRuleSchema = z.strictObject({
  name: z.string().min(1),
  action: z.enum(['ALLOW', 'DENY']),
  /** Source principals (SPIFFE IDs); '*' matches any authenticated peer. */
  principals: z.array(z.union([spiffeId, z.literal('*')])).optional(),
  /** Source namespaces, read from the principal's /ns/<namespace>/ segment. */
  namespaces: z.array(name).optional(),
  methods: z.array(httpMethod).optional(),
  /** Normalized paths: exact, or a prefix ending in '*' ("/api/*"). */
  paths: z.array(z.string().startsWith('/')).optional(),
  headers: z.array(HeaderMatchSchema).optional(),
});

/**
 * A listener of a gateway: a port facing clients outside the mesh (plain HTTP, or HTTPS with
 * a server certificate for the gateway's public host names).
 */
export const GatewayListenerSchema = z.strictObject({
  name,
  port,
  protocol: z.enum(['http', 'https']),
  /** https only: the server certificate chain and key (PEM files), reloaded on change. */
  tls: z.strictObject({
    certFile: z.string().min(1),
    keyFile: z.string().min(1),
  }).optional(),
});

/** A host name a gateway route matches: exact (`shop.example.com`), a wildcard (`*.example.com`) or `*` (any host). */
export const GATEWAY_HOST = /^(\*|(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)$/;

/** A route of a gateway: requests for one of its hosts whose path starts with pathPrefix go to an outbound service. */
export const GatewayRouteSchema = z.strictObject({
  name,
  /** Host names (the Host header without its port, lower case). */
  hosts: z.array(z.string().regex(GATEWAY_HOST, 'must be a lower-case host name, "*.<domain>" or "*"')).min(1),
  /** Path prefix, matched on the normalized path ("/" matches every path). */
  pathPrefix: z.string().startsWith('/').default('/'),
  /** The name of an outbound service of this config. */
  service: name,
});

/**
 * The gateway section: present only in a gateway's config (a MeshGateway). Its listeners face
 * outside clients; each request is matched to a route by host and path, and then takes the
 * outbound request path to the route's service (mTLS with the gateway's own identity).
 */
export const GatewaySchema = z.strictObject({
  /** Where the gateway listeners bind (they face outside, unlike the outbound listener). */
  bindAddress: z.string().default('0.0.0.0'),
  listeners: z.array(GatewayListenerSchema).min(1),
  routes: z.array(GatewayRouteSchema).min(1),
});

/** True for an IPv4 loopback address (127.0.0.0/8) or ::1. */
export function isLoopbackAddress(address: string): boolean {
  return /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.test(address) && address.split('.').every((o) => Number(o) <= 255)
    || address === '::1' || address === 'localhost';
}

/** An app probe served on the admin port. */
export const AppProbeSchema = z.strictObject({
  /** The name of the probed app port (one of workload.appPorts). */
  portName: name,
  kind: z.enum(['livez', 'readyz']),
  /** The app path (and query) the probe GETs, as the pod spec declared it. */
  path: z.string().startsWith('/').max(2048).regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces'),
});

/** The sidecar's config. */
export const SidecarConfigSchema = z.strictObject({
  apiVersion: z.literal(SIDECAR_CONFIG_API_VERSION),
  kind: z.literal(SIDECAR_CONFIG_KIND),
  workload: z.strictObject({
    name,
    namespace: name,
    version: name,
    serviceAccount: name,
    /** spiffe://<trust-domain>/ns/<namespace>/sa/<serviceAccount> */
    identity: spiffeId,
    trustDomain: z.string().min(1),
    appPorts: z.array(z.strictObject({
      name,
      port,
      /** 'tcp': meshed as a byte stream (connection-level authorization, no HTTP parsing). */
      protocol: z.enum(['http', 'http2', 'grpc', 'tcp']).default('http'),
    })).min(1),
  }),
  /** Where the listeners bind. Local mode gives each instance its own 127.x address. */
  listeners: z.strictObject({
    /**
     * The inbound and admin listeners' address. '0.0.0.0' (or '::') means every address of
     * both families: they listen on 0.0.0.0 and, where the pod has IPv6, on '::' too.
     */
    bindAddress: z.string().default('0.0.0.0'),
    /**
     * The outbound listener's address: always loopback, so nothing outside the pod can use it
     * as a proxy (intercepted traffic is redirected to loopback). Unset: bindAddress when that
     * is a loopback address (the local runner's 127.x per instance), else 127.0.0.1 and ::1.
     */
    outboundBindAddress: z.string().refine(isLoopbackAddress, 'must be a loopback address (127.0.0.0/8 or ::1): the outbound listener must not be reachable from outside the pod').optional(),
    outboundPort: port.default(PROXY_OUTBOUND_PORT),
    inboundPort: port.default(PROXY_INBOUND_PORT),
    adminPort: port.default(PROXY_ADMIN_PORT),
  }).default({ bindAddress: '0.0.0.0', outboundPort: PROXY_OUTBOUND_PORT, inboundPort: PROXY_INBOUND_PORT, adminPort: PROXY_ADMIN_PORT }),
  /** The workload certificate, key and the mesh CA bundle (PEM files), reloaded on change. */
  tls: z.strictObject({
    certFile: z.string().min(1),
    keyFile: z.string().min(1),
    caFile: z.string().min(1),
  }),
  inbound: z.strictObject({
    mtls: z.strictObject({ mode: z.enum(['STRICT', 'PERMISSIVE']).default('STRICT') }).default({ mode: 'STRICT' }),
    /** The app, on loopback. */
    app: z.strictObject({ address: z.string().default('127.0.0.1'), port }),
    authorization: z.strictObject({
      rules: z.array(AuthorizationRuleSchema).default([]),
    }).default({ rules: [] }),
    /**
     * The app's HTTP probes (the constructs rewrite the pod's probes to the admin port): the
     * admin port's /app-health/<portName>/<kind> GETs exactly this path on that app port, and
     * answers 404 for a probe not listed here, so the admin port reaches no other app path.
     */
    probes: z.array(AppProbeSchema).default([]),
    pathNormalization: z.strictObject({
      mergeSlashes: z.boolean().default(true),
      /** Refuse %2F, %5C and backslashes (the class of Istio's CVE-2021-31920). */
      rejectEncodedSlashes: z.boolean().default(true),
      /**
       * DENY rules on paths also match the path as apps that fold paths read it: case,
       * `;params`, trailing dots and whitespace of a segment ignored (`/ADMIN`, `/admin;x`,
       * `/admin.`, `/admin%20` are denied by a rule on `/admin`). Never widens an ALLOW rule.
       * Unset means true (left out of the defaults so that configs written before it read the same).
       */
      foldForDenyRules: z.boolean().optional(),
    }).default({ mergeSlashes: true, rejectEncodedSlashes: true }),
  }),
  outbound: z.strictObject({
    services: z.array(OutboundServiceSchema).default([]),
    /** Services outside the mesh the app may call (ExternalService): matched by host before passthrough. */
    externalServices: z.array(ExternalServiceSchema).default([]),
    /**
     * Egress mode. true (passthrough): hosts neither in services nor in externalServices are
     * forwarded to their own address. false (allow-list): they are refused with 502 and flag NR.
     * The constructs always write it (their default is allow-list); true here only keeps
     * configs written before it meaning what they meant.
     */
    passthrough: z.boolean().default(true),
    /** TCP destination services, each on its own loopback listener port. */
    tcpServices: z.array(TcpServiceSchema).default([]),
  }).default({ services: [], externalServices: [], passthrough: true, tcpServices: [] }),
  telemetry: z.strictObject({
    metrics: z.strictObject({ enabled: z.boolean().default(true) }).default({ enabled: true }),
    tracing: z.strictObject({
      enabled: z.boolean().default(false),
      /** Percentage of new traces sampled. */
      sampleRate: percentage.default(1),
      collector: z.strictObject({
        protocol: z.enum(['otlp-http', 'zipkin']).default('otlp-http'),
        endpoint: z.url(),
      }).optional(),
    }).default({ enabled: false, sampleRate: 1 }),
    accessLog: z.strictObject({
      enabled: z.boolean().default(true),
      format: z.enum(['json', 'text']).default('json'),
    }).default({ enabled: true, format: 'json' }),
  }).default({
    metrics: { enabled: true },
    tracing: { enabled: false, sampleRate: 1 },
    accessLog: { enabled: true, format: 'json' },
  }),
  /**
   * SIGTERM, after the drain window: close the listeners, then wait at most this long for the
   * app's connections and the requests in flight.
   */
  drainTimeoutMs: durationMs.default(DEFAULT_DRAIN_TIMEOUT_MS),
  /**
   * SIGTERM: the drain window (Istio's terminationDrainDuration). Both listeners keep accepting
   * this long; inbound answers carry `Connection: close` and HTTP/2 sessions get GOAWAY, so
   * peers move to other pods while the endpoint is removed; readiness is 503. Unset means
   * DEFAULT_DRAIN_DURATION_MS (left out of the defaults so that configs written before it read the same).
   */
  drainDurationMs: durationMs.optional(),
  /** Only in a gateway's config: the listeners that face outside clients and their routes. */
  gateway: GatewaySchema.optional(),
  /**
   * Graceful overload (docs/performance.md#graceful-overload): a request over these limits is
   * answered 503 with `x-typemesh-overloaded: true` and response flag OL before its body is read.
   * Unset fields take the defaults of src/proxy-image/admission.ts (left out of the defaults here
   * so that configs written before read the same).
   */
  overload: z.strictObject({
    /** Requests in flight per listener (inbound, outbound, gateway); 0 = no limit. Default 1024. */
    maxActiveRequests: z.number().int().min(0).optional(),
    /** Shed new requests while the event loop runs later than this (ms); 0 = off. Default 500. */
    maxEventLoopLagMs: durationMs.optional(),
    /**
     * Adaptive limit (Little's law): admit at most completions-per-ms x this many requests in flight
     * per listener (never fewer than 32, never more than maxActiveRequests), so that an admitted
     * request queues about this long at most, whatever the CPU can serve. 0 = off. Default off.
     */
    maxQueueDelayMs: durationMs.optional(),
  }).optional(),
}).superRefine((cfg, ctx) => {
  // Cross-field rules that a per-field schema cannot state.
  cfg.outbound.services.forEach((svc, si) => {
    const subsets = new Set(svc.subsets.map((s) => s.name));
    svc.routes.forEach((route, ri) => {
      const base = ['outbound', 'services', si, 'routes', ri];
      const total = route.destinations.reduce((sum, d) => sum + d.weight, 0);
      if (total !== 100) {
        ctx.addIssue({ code: 'custom', path: [...base, 'destinations'], message: `weights must sum to 100, got ${total}` });
      }
      route.destinations.forEach((d, di) => {
        if (!subsets.has(d.subset)) {
          ctx.addIssue({ code: 'custom', path: [...base, 'destinations', di, 'subset'], message: `unknown subset "${d.subset}" (known: ${[...subsets].join(', ')})` });
        }
      });
      if (route.mirror && !subsets.has(route.mirror.subset)) {
        ctx.addIssue({ code: 'custom', path: [...base, 'mirror', 'subset'], message: `unknown subset "${route.mirror.subset}"` });
      }
      const r = route.retries;
      if (r && route.timeoutMs > 0 && r.perTryTimeoutMs > route.timeoutMs) {
        ctx.addIssue({ code: 'custom', path: [...base, 'retries', 'perTryTimeoutMs'], message: `per-try timeout ${r.perTryTimeoutMs} ms exceeds the route timeout ${route.timeoutMs} ms` });
      }
      if (r && r.backoff.baseIntervalMs > r.backoff.maxIntervalMs) {
        ctx.addIssue({ code: 'custom', path: [...base, 'retries', 'backoff'], message: 'baseIntervalMs must not exceed maxIntervalMs' });
      }
    });
  });
  checkExternalServices(cfg.outbound, ctx);
  checkTcp(cfg, ctx);
  if (cfg.gateway) checkGateway(cfg, cfg.gateway, ctx);
  const probeKeys = new Set<string>();
  cfg.inbound.probes.forEach((probe, pi) => {
    if (!cfg.workload.appPorts.some((p) => p.name === probe.portName)) {
      ctx.addIssue({ code: 'custom', path: ['inbound', 'probes', pi, 'portName'], message: `unknown app port "${probe.portName}" (known: ${cfg.workload.appPorts.map((p) => p.name).join(', ')})` });
    }
    const key = `${probe.portName}/${probe.kind}`;
    if (probeKeys.has(key)) ctx.addIssue({ code: 'custom', path: ['inbound', 'probes', pi], message: `a second ${probe.kind} probe for port "${probe.portName}": each port has at most one of each kind` });
    probeKeys.add(key);
  });
  if (cfg.telemetry.tracing.enabled && !cfg.telemetry.tracing.collector) {
    ctx.addIssue({ code: 'custom', path: ['telemetry', 'tracing', 'collector'], message: 'tracing is enabled but no collector is set' });
  }
});

/** Cross-field rules of external services: names and hosts unique across the outbound section, TLS only with https. */
function checkExternalServices(out: { services: Array<{ name: string; hosts: string[] }>; externalServices: Array<z.output<typeof ExternalServiceSchema>> }, ctx: z.RefinementCtx): void {
  const names = new Set(out.services.map((s) => s.name));
  const hosts = new Set(out.services.flatMap((s) => s.hosts.map((h) => h.toLowerCase())));
  out.externalServices.forEach((ext, i) => {
    const base = ['outbound', 'externalServices', i];
    if (names.has(ext.name)) ctx.addIssue({ code: 'custom', path: [...base, 'name'], message: `the name "${ext.name}" is already an outbound service` });
    names.add(ext.name);
    ext.hosts.forEach((h, hi) => {
      if (hosts.has(h)) ctx.addIssue({ code: 'custom', path: [...base, 'hosts', hi], message: `host "${h}" is already claimed by another outbound service` });
      hosts.add(h);
    });
    if (ext.protocol === 'http' && ext.tls) ctx.addIssue({ code: 'custom', path: [...base, 'tls'], message: 'tls applies to protocol https only (plain http has no certificate to verify)' });
    const r = ext.retries;
    if (r && ext.timeoutMs > 0 && r.perTryTimeoutMs > ext.timeoutMs) {
      ctx.addIssue({ code: 'custom', path: [...base, 'retries', 'perTryTimeoutMs'], message: `per-try timeout ${r.perTryTimeoutMs} ms exceeds the timeout ${ext.timeoutMs} ms` });
    }
  });
}

/**
 * Cross-field rules of TCP: TCP services' names and listener ports unique and clear of the
 * sidecar's own ports; and, where the workload serves a TCP port, no authorization rule with
 * HTTP fields (methods, paths, headers): a byte stream has none, so such a rule could only be
 * misread (an ALLOW that never matches, a DENY that never fires).
 */
function checkTcp(cfg: {
  listeners: { outboundPort: number; inboundPort: number; adminPort: number };
  workload: { appPorts: Array<{ name: string; protocol: string }> };
  inbound: { authorization: { rules: Array<z.output<typeof AuthorizationRuleSchema>> } };
  outbound: { services: Array<{ name: string }>; externalServices: Array<{ name: string }>; tcpServices: Array<z.output<typeof TcpServiceSchema>> };
}, ctx: z.RefinementCtx): void {
  const l = cfg.listeners;
  const reserved = new Map([[l.outboundPort, 'listeners.outboundPort'], [l.inboundPort, 'listeners.inboundPort'], [l.adminPort, 'listeners.adminPort']]);
  const names = new Set([...cfg.outbound.services, ...cfg.outbound.externalServices].map((s) => s.name));
  cfg.outbound.tcpServices.forEach((svc, i) => {
    const base = ['outbound', 'tcpServices', i];
    if (names.has(svc.name)) ctx.addIssue({ code: 'custom', path: [...base, 'name'], message: `the name "${svc.name}" is already an outbound service` });
    names.add(svc.name);
    if (reserved.has(svc.listenerPort)) ctx.addIssue({ code: 'custom', path: [...base, 'listenerPort'], message: `port ${svc.listenerPort} is already ${reserved.get(svc.listenerPort)}; give each TCP service a port of its own` });
    reserved.set(svc.listenerPort, `outbound.tcpServices[${i}].listenerPort`);
  });
  const tcpPorts = cfg.workload.appPorts.filter((p) => p.protocol === 'tcp');
  if (tcpPorts.length === 0) return;
  cfg.inbound.authorization.rules.forEach((rule, ri) => {
    for (const field of ['methods', 'paths', 'headers'] as const) {
      if (rule[field] !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['inbound', 'authorization', 'rules', ri, field], message: `rule "${rule.name}" has ${field}, but app port ${tcpPorts.map((p) => `"${p.name}"`).join(', ')} is TCP, where only principals and namespaces can be checked; drop ${field} or serve TCP from a workload of its own` });
      }
    }
  });
}

/** Cross-field rules of the gateway section. */
function checkGateway(cfg: { listeners: { outboundPort: number; inboundPort: number; adminPort: number }; outbound: { services: Array<{ name: string }> } }, gw: z.output<typeof GatewaySchema>, ctx: z.RefinementCtx): void {
  const reserved = new Map([[cfg.listeners.outboundPort, 'listeners.outboundPort'], [cfg.listeners.inboundPort, 'listeners.inboundPort'], [cfg.listeners.adminPort, 'listeners.adminPort']]);
  const names = new Set<string>();
  const ports = new Set<number>();
  gw.listeners.forEach((l, i) => {
    const base = ['gateway', 'listeners', i];
    if (names.has(l.name)) ctx.addIssue({ code: 'custom', path: [...base, 'name'], message: `two gateway listeners are named "${l.name}"` });
    names.add(l.name);
    if (ports.has(l.port)) ctx.addIssue({ code: 'custom', path: [...base, 'port'], message: `two gateway listeners use port ${l.port}` });
    ports.add(l.port);
    if (reserved.has(l.port)) ctx.addIssue({ code: 'custom', path: [...base, 'port'], message: `port ${l.port} is already ${reserved.get(l.port)}` });
    if (l.protocol === 'https' && !l.tls) ctx.addIssue({ code: 'custom', path: [...base, 'tls'], message: 'an https listener needs tls.certFile and tls.keyFile' });
    if (l.protocol === 'http' && l.tls) ctx.addIssue({ code: 'custom', path: [...base, 'tls'], message: 'an http listener takes no tls; use protocol https' });
  });
  const services = new Set(cfg.outbound.services.map((s) => s.name));
  const routeNames = new Set<string>();
  gw.routes.forEach((r, i) => {
    const base = ['gateway', 'routes', i];
    if (routeNames.has(r.name)) ctx.addIssue({ code: 'custom', path: [...base, 'name'], message: `two gateway routes are named "${r.name}"` });
    routeNames.add(r.name);
    if (!services.has(r.service)) ctx.addIssue({ code: 'custom', path: [...base, 'service'], message: `unknown outbound service "${r.service}" (known: ${[...services].join(', ') || 'none'})` });
  });
}

/** The sidecar's config as written (defaults may be omitted). */
export type SidecarConfigInput = z.input<typeof SidecarConfigSchema>;
/** The sidecar's config after validation, with every default filled in. */
export type SidecarConfig = z.output<typeof SidecarConfigSchema>;
/** A destination service, validated. */
export type OutboundService = SidecarConfig['outbound']['services'][number];
/** A route, validated. */
export type Route = OutboundService['routes'][number];
/** A subset, validated. */
export type Subset = OutboundService['subsets'][number];
/** A TCP destination service, validated. */
export type TcpServiceConfig = SidecarConfig['outbound']['tcpServices'][number];
/** An external service, validated. */
export type ExternalServiceConfig = SidecarConfig['outbound']['externalServices'][number];
/** A retry policy, validated. */
export type RetryPolicyConfig = NonNullable<Route['retries']>;
/** The listeners section, validated. */
export type ListenersConfig = SidecarConfig['listeners'];
/** An app probe, validated. */
export type AppProbeConfig = z.output<typeof AppProbeSchema>;

/**
 * The addresses the inbound and admin listeners bind. A wildcard means both families: IPv6
 * ('::', IPv6 only) is listened on too, so IPv6 redirected to the inbound port has a listener.
 */
export function inboundListenAddresses(l: Pick<ListenersConfig, 'bindAddress'>): string[] {
  return l.bindAddress === '0.0.0.0' || l.bindAddress === '::' ? ['0.0.0.0', '::'] : [l.bindAddress];
}

/**
 * The addresses the outbound listener binds, always loopback: outboundBindAddress, else
 * bindAddress when it is loopback, else 127.0.0.1 and ::1 (where REDIRECT in the nat OUTPUT
 * chain sends the app's IPv4 and IPv6 connections).
 */
export function outboundListenAddresses(l: Pick<ListenersConfig, 'bindAddress' | 'outboundBindAddress'>): string[] {
  if (l.outboundBindAddress !== undefined) return [l.outboundBindAddress];
  if (isLoopbackAddress(l.bindAddress)) return [l.bindAddress];
  return ['127.0.0.1', '::1'];
}

/** An authorization rule, validated. */
export type AuthorizationRule = z.output<typeof AuthorizationRuleSchema>;
/** A route match, validated. */
export type RouteMatch = z.output<typeof RouteMatchSchema>;
/** A header match, validated. */
export type HeaderMatch = z.output<typeof HeaderMatchSchema>;
/** A string match, validated. */
export type StringMatch = z.output<typeof StringMatchSchema>;
/** The gateway section, validated. */
export type GatewayConfig = NonNullable<SidecarConfig['gateway']>;
/** A gateway route, validated. */
export type GatewayRoute = GatewayConfig['routes'][number];

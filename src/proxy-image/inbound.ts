/**
 * The inbound listener's request path: a request from a peer sidecar (mTLS) or, in
 * PERMISSIVE mode, a plaintext client, has its path normalized once, is authorized against
 * the workload's rules with the peer's SPIFFE ID as principal, and is forwarded with the same
 * normalized path to the app on loopback over pooled keep-alive connections.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { Canceller, discardBody, upstreamRequest, UpstreamResponse } from './upstream-request';
import { normalizePath } from './authz/path';
import { forwardableHeaders, forwardableRequestHeaders, hasNoBody, LOOP_HEADER, methodRefusal, pathWithoutQuery, sendError, setsB3, streamBodyToClient } from './http-util';
import { spiffeIdFromSubjectAltName } from './identity';
import type { ProxyObserver, RequestObservation } from './observer';
import type { ProxyState } from './state';
import { appPortPools } from './app-port-pools';
import { appPortTarget } from './target-port';
import { isConnectFailure } from './upstream-connector';

/** Dependencies of the inbound handler. */
export interface InboundDeps {
  readonly state: () => ProxyState;
  readonly observer: ProxyObserver;
  readonly ownIdentity: () => string | undefined;
  readonly track: (delta: number) => void;
}

const principals = new WeakMap<Socket, string | null>();

/** The peer's SPIFFE ID of an mTLS connection (cached per connection), or undefined for plaintext. */
export function peerPrincipal(socket: Socket): string | undefined {
  const cached = principals.get(socket);
  if (cached !== undefined) return cached ?? undefined;
  let id: string | undefined;
  const tlsSocket = socket as TLSSocket;
  if (tlsSocket.encrypted) id = spiffeIdFromSubjectAltName(tlsSocket.getPeerCertificate()?.subjectaltname);
  principals.set(socket, id ?? null);
  return id;
}

/** The result of the inbound checks that come before forwarding. */
export type InboundAdmission =
  | { readonly ok: true; readonly path: string; readonly principal?: string }
  | { readonly ok: false; readonly status: number; readonly body: string; readonly flag: string };

/** Normalizes the path and authorizes the request. */
export function admit(state: ProxyState, req: IncomingMessage): InboundAdmission {
  const badMethod = methodRefusal(req);
  if (badMethod) return { ok: false, status: 400, body: badMethod, flag: 'DPE' };
  const principal = peerPrincipal(req.socket);
  const norm = normalizePath(req.url ?? '/', state.config.inbound.pathNormalization);
  if (!norm.ok) return { ok: false, status: 400, body: `bad request: invalid path: ${norm.reason}`, flag: 'NP' };
  const decision = state.authorizer.decide({ principal, method: req.method ?? 'GET', path: pathWithoutQuery(norm.path), headers: req.headers });
  if (!decision.allowed) return { ok: false, status: 403, body: `RBAC: access denied: ${decision.reason}`, flag: 'RBAC' };
  return { ok: true, path: norm.path, principal };
}

/**
 * Builds the headers sent to the app. x-typemesh-source is mesh-internal and never reaches the
 * app (the observer has read it already); `replacesB3` drops the b3 headers the observer's own
 * context would leave stale (see forwardableRequestHeaders).
 */
export function appHeaders(req: IncomingMessage, principal: string | undefined, ownId: string | undefined, replacesB3 = false): Record<string, string | string[]> {
  const headers = forwardableRequestHeaders(req.headers, replacesB3);
  // HTTP/2 carries the authority as a pseudo-header; an HTTP/1.1 app needs it as Host.
  const authority = req.headers[':authority'];
  if (headers.host === undefined && typeof authority === 'string') headers.host = authority;
  if (headers[LOOP_HEADER] !== undefined) delete headers[LOOP_HEADER];
  // Only this sidecar may state who the peer is: drop whatever the client claimed.
  delete headers['x-forwarded-client-cert'];
  if (principal) headers['x-forwarded-client-cert'] = ownId ? `By=${ownId};URI=${principal}` : `URI=${principal}`;
  headers['x-forwarded-proto'] = (req.socket as TLSSocket).encrypted ? 'https' : 'http';
  return headers;
}

/**
 * How the observer should treat the connection. Only 'mutual_tls' makes it trust
 * x-typemesh-source: a plaintext (PERMISSIVE) client cannot forge its source workload.
 */
export function connectionSecurityOf(req: IncomingMessage, principal: string | undefined): 'mutual_tls' | 'none' {
  return principal || (req.socket as TLSSocket).encrypted ? 'mutual_tls' : 'none';
}

/** The inbound checks and the request's observation, shared by the HTTP and Upgrade paths. */
export interface InboundStart {
  readonly admission: InboundAdmission;
  readonly principal?: string;
  readonly obs: RequestObservation;
}

/** Admits the request (path normalization, authorization) and starts its observation. */
export function startInbound(state: ProxyState, observer: ProxyObserver, req: IncomingMessage): InboundStart {
  const admission = admit(state, req);
  const principal = peerPrincipal(req.socket);
  const obs = observer.requestStarted({
    direction: 'inbound',
    method: req.method ?? 'GET',
    authority: req.headers.host ?? (req.headers[':authority'] as string | undefined) ?? '',
    path: admission.ok ? admission.path : req.url ?? '',
    headers: req.headers,
    sourcePrincipal: principal,
    connectionSecurity: connectionSecurityOf(req, principal),
    // HTTP/2: the compat layer's req.socket stands for the session's socket. TLS accepted in
    // PERMISSIVE mode runs over a stream wrapper; sidecar.ts copies the raw socket's address onto it.
    peerAddress: req.socket.remoteAddress,
  });
  return { admission, principal, obs };
}

/**
 * The one header-hygiene and identity step of every inbound request (HTTP and Upgrade alike):
 * {@link appHeaders} plus the observer's propagation headers.
 */
export function inboundForwardHeaders(req: IncomingMessage, principal: string | undefined, ownId: string | undefined, obs: RequestObservation): Record<string, string | string[]> {
  const headers = appHeaders(req, principal, ownId, setsB3(obs.propagationHeaders));
  for (const k in obs.propagationHeaders) headers[k] = obs.propagationHeaders[k];
  return headers;
}

/** The inbound request handler. */
export class InboundProxy {
  constructor(private readonly deps: InboundDeps) {}

  public handle = (req: IncomingMessage, res: ServerResponse): void => {
    this.deps.track(1);
    res.once('close', () => this.deps.track(-1));
    const state = this.deps.state();
    const { admission, principal, obs } = startInbound(state, this.deps.observer, req);
    if (!admission.ok) {
      finishError(res, obs, admission.status, admission.body, admission.flag);
      return;
    }
    void this.forward(state, req, res, admission.path, principal, obs);
  };

  private async forward(state: ProxyState, req: IncomingMessage, res: ServerResponse, path: string, principal: string | undefined, obs: RequestObservation): Promise<void> {
    const headers = inboundForwardHeaders(req, principal, this.deps.ownIdentity(), obs);
    const cancel = new Canceller();
    const onClose = (): void => {
      if (!res.writableEnded) cancel.cancel(new Error('client closed the connection'));
    };
    res.once('close', onClose);
    // The app port the calling sidecar named in its SNI (target-port.ts); else the default one.
    const app = state.config.inbound.app;
    const target = appPortTarget(state.config, (req.socket as TLSSocket).servername);
    const appPort = target.kind === 'port' ? target.port : app.port;
    const pool = appPort === app.port || target.kind !== 'port' ? state.appPool : appPortPools.get(app.address, appPort, target.protocol);
    let response: UpstreamResponse;
    try {
      response = await upstreamRequest(pool, {
        method: req.method ?? 'GET',
        path,
        headers,
        body: hasNoBody(req) ? null : req,
        cancel,
      });
    } catch (e) {
      if (cancel.reason) {
        obs.end({ status: 0, requestBytes: 0, responseBytes: 0, retries: 0, flags: ['DC'] });
        return;
      }
      const msg = (e as Error).message;
      if (isConnectFailure(e)) finishError(res, obs, 503, `upstream connect error: the app at ${app.address}:${appPort} refused the connection (${msg})`, 'UF');
      else finishError(res, obs, 503, `upstream reset before response: ${msg}`, 'UC');
      return;
    }
    res.removeListener('close', onClose);
    if (response.body.errored) {
      finishError(res, obs, 502, `upstream sent an invalid response: ${response.body.errored.message}`, 'UPE');
      return;
    }
    const grpc = response.headers['grpc-status'];
    try {
      res.writeHead(response.statusCode, forwardableHeaders(response.headers as Record<string, string | string[] | undefined>));
    } catch (e) {
      // A header value Node refuses to send (e.g. a control character): never pass it on.
      discardBody(response.body);
      finishError(res, obs, 502, `upstream sent an invalid response header: ${(e as Error).message}`, 'UPE');
      return;
    }
    const requestBytes = Number(req.headers['content-length'] ?? 0) || 0;
    streamBodyToClient(res, response, (status, responseBytes, flags) => {
      obs.end({ status, requestBytes, responseBytes, retries: 0, flags, grpcStatus: grpcStatusFrom(grpc) ?? grpcStatusFrom(response.trailers['grpc-status']) });
    });
  }
}

function finishError(res: ServerResponse, obs: RequestObservation, status: number, body: string, flag: string): void {
  sendError(res, status, body);
  obs.end({ status, requestBytes: 0, responseBytes: body.length + 1, retries: 0, flags: [flag] });
}

/** gRPC status from a header or trailer value (a status in trailers arrives with the end of the body). */
function grpcStatusFrom(v: string | string[] | undefined): number | undefined {
  if (typeof v !== 'string') return undefined;
  const n = Number(v);
  return Number.isInteger(n) ? n : undefined;
}

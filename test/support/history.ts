/**
 * @module The history checker: reads what clients sent and saw (requests, answers, timings,
 * sockets) and lists every anomaly, i.e. every place where keepsake broke a promise a user
 * relies on. Pure: no I/O, so hand-made histories test it (test/unit/history.test.ts).
 *
 * What the workload must hold to for the checks to be exact: each client does one request at a
 * time; each basket add has its own sku and qty 1 (so any basket seen tells which adds landed,
 * and how often); each name written is unique.
 */

export type OpKind = 'add' | 'put-name' | 'read' | 'login' | 'logout' | 'destroy-user' | 'stale';

export interface Item {
  readonly sku: string;
  readonly qty: number;
}

/** One request and its answer. Times in ms on one clock. */
export interface HttpEvent {
  readonly id: number;
  /** The client that sent it ('admin' for destroy-user). A client sends one request at a time. */
  readonly client: string;
  readonly op: OpKind;
  readonly node?: string;
  readonly start: number;
  readonly end: number;
  /** HTTP status; 0 when no answer came (connection error, client timeout). */
  readonly status: number;
  readonly errorCode?: string | undefined;
  /** Session id of the cookie sent, null without one. */
  readonly sent: string | null;
  /** Session id the client's cookie names after the answer (null: cleared or never set). */
  readonly got: string | null;
  /** add: the sku added (qty 1). */
  readonly sku?: string;
  /** put-name: the name written. */
  readonly name?: string;
  /** login and destroy-user: the user. */
  readonly user?: string;
  /** The basket the answer shows, if it shows one. */
  readonly basket?: readonly Item[];
  /** The name the answer shows, if it shows a session view. */
  readonly observedName?: string | null;
}

export interface SocketRecord {
  readonly id: number;
  readonly client: string;
  readonly node?: string;
  /** Session id of the handshake's cookie (null: anonymous socket, not checked). */
  readonly session: string | null;
  /** When its hello arrived. */
  readonly openedAt: number;
  /** When it closed (null: still open when the run ended). */
  readonly closedAt: number | null;
  readonly closeCode: number | null;
  /** True when the client closed it itself. */
  readonly closedByClient: boolean;
}

export interface History {
  readonly events: readonly HttpEvent[];
  readonly sockets: readonly SocketRecord[];
  /** Uncaught exceptions and unhandled rejections in the app nodes' process. */
  readonly crashes: readonly { at: number; error: string }[];
  /** Longest answer allowed (acquire + command timeouts + margin). */
  readonly boundMs: number;
  /** How long a socket of an ended session may stay open. @default 1000 */
  readonly socketCloseMs?: number;
  /** When the sockets were last looked at: an end less than socketCloseMs before it is not judged. */
  readonly observedUntil?: number;
  /**
   * Times a node's notice subscriber may have been away (a fault that cuts connections, until its
   * reconnect). Redis pub/sub delivers at most once: a notice published then is lost. A logout
   * in such a window closes the node's sockets once it is back (within a second of the window's
   * end, not of the logout); a login's is the same, but the node, finding the session gone,
   * closes its sockets with 4401 (they reconnect with the new cookie). Both are allowed.
   */
  readonly noticeOutages?: readonly { readonly from: number; readonly to: number }[];
}

export type AnomalyKind =
  | 'applied-twice'
  | 'acknowledged-add-lost'
  | 'acknowledged-name-lost'
  | 'foreign-item'
  | 'session-lost'
  | 'served-after-end'
  | 'socket-open-after-end'
  | 'socket-closed-without-end'
  | 'over-bound'
  | 'unexpected-status'
  | 'node-crash';

export interface Anomaly {
  readonly kind: AnomalyKind;
  readonly detail: string;
  /** The event (or socket) it was seen on. */
  readonly event?: number;
}

/** Statuses each operation may answer; anything else is an anomaly. 0 never is allowed. */
const ALLOWED: Record<OpKind, readonly number[]> = {
  add: [201, 409, 503],
  'put-name': [200, 409, 503],
  read: [200, 503],
  login: [200, 409, 503],
  logout: [200, 503],
  'destroy-user': [200, 503],
  stale: [200, 503],
};

const ok = (event: HttpEvent): boolean => event.status >= 200 && event.status < 300;

/**
 * An operation answered 503 (or not at all) may still take effect later: its command can sit in a
 * stalled Redis (SIGSTOP, a slow network) after the app gave up on it. The faults injected last
 * seconds, so ten seconds after the answer it is taken as done or never.
 */
export const LATE_EFFECT_MS = 10_000;

/** What one unbroken run of a client's session (across logins) must show. */
interface Chain {
  /** sku -> 'ack' (answered 2xx: must be there, once) or 'maybe' (no 2xx: at most once). */
  readonly adds: Map<string, 'ack' | 'maybe'>;
  /** The last name answered 2xx (null: none yet), and names sent after it without a 2xx. */
  ackedName: string | null;
  /** When that name's 200 came. */
  ackedNameAt: number;
  readonly laterNames: Set<string>;
  /** An operation that may have ended or moved the session got no 2xx: the next answer decides. */
  uncertain: boolean;
}

const newChain = (): Chain => ({ adds: new Map(), ackedName: null, ackedNameAt: 0, laterNames: new Set(), uncertain: false });

interface End {
  /** When the ending operation was sent, and when its 2xx came (Infinity: none came). */
  readonly start: number;
  readonly end: number;
  /** Until when it may take effect: its answer, or LATE_EFFECT_MS after a non-2xx one. */
  readonly until: number;
  readonly by: number;
  readonly how: 'logout' | 'login' | 'destroy-user';
}

export function checkHistory(history: History): Anomaly[] {
  const anomalies: Anomaly[] = [];
  // One anomaly per broken promise: a sku applied twice shows in every later basket, but counts once.
  const seen = new Set<string>();
  const add = (kind: AnomalyKind, detail: string, event?: number, about?: string): void => {
    if (about !== undefined) {
      if (seen.has(`${kind} ${about}`)) return;
      seen.add(`${kind} ${about}`);
    }
    anomalies.push(event === undefined ? { kind, detail } : { kind, detail, event });
  };
  const events = [...history.events].sort((a, b) => a.start - b.start || a.id - b.id);
  const socketCloseMs = history.socketCloseMs ?? 1000;

  for (const crash of history.crashes) add('node-crash', `uncaught in an app node at ${crash.at}: ${crash.error}`);

  // Statuses and bounds.
  for (const event of events) {
    if (!ALLOWED[event.op].includes(event.status)) {
      add('unexpected-status', `${describe(event)} answered ${event.status}${event.errorCode ? ` ${event.errorCode}` : ''}`, event.id);
    }
    if (event.op !== 'destroy-user' && event.end - event.start > history.boundMs) {
      add('over-bound', `${describe(event)} took ${Math.round(event.end - event.start)} ms, bound ${history.boundMs} ms`, event.id);
    }
  }

  const sends = new Map<string, HttpEvent>();
  for (const event of events) if (event.op === 'add' && event.sku !== undefined) sends.set(event.sku, event);

  // Who a session belongs to (from logins answered 2xx), which session it came from, and what
  // ended it: definitely (a 2xx) or possibly (any answer).
  const userOf = new Map<string, { user: string; loginStart: number; since: number }>();
  const predecessor = new Map<string, string>();
  const definiteEnd = new Map<string, End>();
  const possibleEnds = new Map<string, End[]>();
  const noteEnd = (session: string, end: End, definite: boolean): void => {
    possibleEnds.set(session, [...(possibleEnds.get(session) ?? []), end]);
    const known = definiteEnd.get(session);
    if (definite && (!known || end.end < known.end)) definiteEnd.set(session, end);
  };
  for (const event of events) {
    if (event.op === 'login' && ok(event) && event.got !== null && event.user !== undefined) {
      userOf.set(event.got, { user: event.user, loginStart: event.start, since: event.end });
      if (event.sent !== null && event.sent !== event.got) predecessor.set(event.got, event.sent);
    }
  }
  for (const event of events) {
    const at = { start: event.start, end: ok(event) ? event.end : Infinity, until: event.end + (ok(event) ? 0 : LATE_EFFECT_MS), by: event.id };
    if (event.op === 'logout' && event.sent !== null) noteEnd(event.sent, { ...at, how: 'logout' }, ok(event));
    if (event.op === 'login' && event.sent !== null && event.sent !== event.got) noteEnd(event.sent, { ...at, how: 'login' }, ok(event));
    if (event.op === 'destroy-user' && event.user !== undefined) {
      for (const [session, owner] of userOf) {
        // One over before the session's login began cannot have ended it.
        if (owner.user !== event.user || at.until < owner.loginStart) continue;
        // Sessions logged in before it was sent end for sure; ones logging in meanwhile may.
        noteEnd(session, { ...at, how: 'destroy-user' }, ok(event) && owner.since < event.start);
      }
    }
  }
  /** Whether something may have ended `session` between `alive` (when it was last served) and `time`. */
  const possiblyEndedBetween = (session: string, alive: number, time: number): boolean =>
    (possibleEnds.get(session) ?? []).some((end) => end.start < time && end.until > alive);

  const lineage = (session: string): Set<string> => {
    const ids = new Set<string>();
    for (let id: string | undefined = session; id !== undefined && !ids.has(id); id = predecessor.get(id)) ids.add(id);
    return ids;
  };

  // No session is served after it ended.
  for (const event of events) {
    if (event.sent === null || !ok(event)) continue;
    const ended = definiteEnd.get(event.sent);
    if (!ended || ended.end >= event.start) continue;
    const kept = event.got === event.sent;
    const carried = (event.basket ?? []).filter((item) => {
      const landed = sends.get(item.sku);
      return landed?.got != null && lineage(event.sent!).has(landed.got);
    });
    if (kept || carried.length > 0) {
      add(
        'served-after-end',
        `${describe(event)} was served with session ${short(event.sent)} ${Math.round(event.start - ended.end)} ms after its ${ended.how} (event ${ended.by}) answered` +
          (kept ? '' : `; the answer shows its items ${carried.map((item) => item.sku).join(', ')}`),
        event.id,
      );
    }
  }

  // An answer that lost data on a session something may have ended: the id should not have been served.
  const endHint = (event: HttpEvent) => (since: number): string => {
    if (event.sent === null) return '';
    for (const id of lineage(event.sent)) {
      // An end sent before this answer, and not over before the lost write was acknowledged.
      const end = (possibleEnds.get(id) ?? []).find((candidate) => candidate.how !== 'login' && candidate.start < event.end && candidate.until > since);
      if (end) return ` (its session ${short(id)} may have been ended by event ${end.by}, a ${end.how}, yet the id was served on)`;
    }
    return '';
  };

  // Per client, in order: every basket and name seen matches what the client was told.
  const byClient = new Map<string, HttpEvent[]>();
  for (const event of events) {
    if (event.op === 'stale' || event.op === 'destroy-user') continue;
    byClient.set(event.client, [...(byClient.get(event.client) ?? []), event]);
  }
  for (const [client, list] of byClient) {
    let chain = newChain();
    /** When the request that last found the client's session began (it was there some time after). */
    let alive = -Infinity;
    for (const event of list) {
      const replaced = event.sent !== null && event.got !== null && event.got !== event.sent && event.op !== 'login' && event.op !== 'logout';
      if (replaced) {
        if (!chain.uncertain && !possiblyEndedBetween(event.sent!, alive, event.end) && chainHoldsData(chain)) {
          add('session-lost', `${describe(event)}: session ${short(event.sent!)} of ${client} was replaced by a new one (${short(event.got!)}) though nothing ended it; ${ackedSummary(chain)}`, event.id);
        }
        chain = newChain();
      } else if (event.sent === null && event.got !== null) {
        chain = newChain();
      } else if (event.op === 'login' && ok(event) && event.sent !== null && (chain.uncertain || possiblyEndedBetween(event.sent, alive, event.end))) {
        // The session the login started from may have been gone: a fresh one was logged in.
        if (!observationFits(event, chain)) chain = newChain();
      }

      if (ok(event)) {
        if (chain.uncertain && !observationFits(event, chain)) chain = newChain();
        chain.uncertain = false;
        checkObservation(event, chain, sends, add, endHint(event));
        if (event.got !== null) alive = event.start;
      }

      switch (event.op) {
        case 'add':
          if (event.sku !== undefined && (ok(event) || event.status !== 400)) chain.adds.set(event.sku, ok(event) ? 'ack' : 'maybe');
          break;
        case 'put-name':
          if (event.name === undefined) break;
          if (ok(event)) {
            chain.ackedName = event.name;
            chain.ackedNameAt = event.end;
            chain.laterNames.clear();
          } else {
            chain.laterNames.add(event.name);
          }
          break;
        case 'login':
          if (!ok(event)) chain.uncertain = true;
          break;
        case 'logout':
          if (ok(event)) chain = newChain();
          else chain.uncertain = true;
          break;
        default:
          break;
      }
    }
  }

  checkSockets(history, events, definiteEnd, possibleEnds, socketCloseMs, add);
  return anomalies;
}

function chainHoldsData(chain: Chain): boolean {
  return chain.ackedName !== null || [...chain.adds.values()].includes('ack');
}

function ackedSummary(chain: Chain): string {
  const acked = [...chain.adds].filter(([, state]) => state === 'ack').map(([sku]) => sku);
  return `acknowledged: ${acked.length} add(s)${chain.ackedName === null ? '' : `, name ${chain.ackedName}`}`;
}

/** Whether an answer is what `chain` predicts (used to tell whether an uncertain operation happened). */
function observationFits(event: HttpEvent, chain: Chain): boolean {
  if (event.basket) {
    const seen = new Set(event.basket.map((item) => item.sku));
    for (const [sku, state] of chain.adds) if (state === 'ack' && !seen.has(sku)) return false;
  }
  if (event.observedName !== undefined && chain.ackedName !== null && event.observedName !== chain.ackedName && !chain.laterNames.has(event.observedName ?? '')) return false;
  return true;
}

type Report = (kind: AnomalyKind, detail: string, event?: number, about?: string) => void;

function checkObservation(event: HttpEvent, chain: Chain, sends: Map<string, HttpEvent>, add: Report, hint: (since: number) => string): void {
  if (event.basket) {
    const seen = new Map(event.basket.map((item) => [item.sku, item.qty]));
    for (const item of event.basket) {
      const sent = sends.get(item.sku);
      if (item.qty > 1) {
        add('applied-twice', `${describe(event)} shows sku ${item.sku} with qty ${item.qty}; it was added once (qty 1), answered ${sent ? `${sent.status} at event ${sent.id}` : 'never'}`, event.id, item.sku);
      }
      if (!chain.adds.has(item.sku) && item.sku !== event.sku) {
        add('foreign-item', `${describe(event)} shows sku ${item.sku}, which ${sent ? `was added by ${sent.client} to session ${short(sent.sent ?? '-')} (event ${sent.id})` : 'nobody added'}, not in this session`, event.id, item.sku);
      }
    }
    if (event.op === 'add' && event.sku !== undefined && !seen.has(event.sku)) {
      add('acknowledged-add-lost', `${describe(event)} answered ${event.status} without its sku in the basket`, event.id, event.sku);
    }
    for (const [sku, state] of chain.adds) {
      if (state === 'ack' && !seen.has(sku)) {
        add('acknowledged-add-lost', `${describe(event)} lacks sku ${sku}, whose add was answered ${sends.get(sku)?.status} (event ${sends.get(sku)?.id})${hint(sends.get(sku)?.end ?? 0)}`, event.id, sku);
        // Reported once; from now on the chain follows what the store holds.
        chain.adds.set(sku, 'maybe');
      }
    }
  }
  if (event.observedName !== undefined) {
    const allowed = chain.ackedName === null ? [null, ...chain.laterNames] : [chain.ackedName, ...chain.laterNames];
    if (!allowed.includes(event.observedName)) {
      add('acknowledged-name-lost', `${describe(event)} shows name ${JSON.stringify(event.observedName)}; the last name answered 200 was ${JSON.stringify(chain.ackedName)}${chain.laterNames.size > 0 ? `, sent since without a 200: ${[...chain.laterNames].join(', ')}` : ''}${hint(chain.ackedNameAt)}`, event.id, `${event.client} ${String(event.observedName)}`);
      chain.ackedName = event.observedName;
      chain.laterNames.clear();
    }
  }
}

function checkSockets(
  history: History,
  events: readonly HttpEvent[],
  definiteEnd: Map<string, End>,
  possibleEnds: Map<string, End[]>,
  socketCloseMs: number,
  add: Report,
): void {
  const loginsOf = new Map<string, HttpEvent[]>();
  for (const event of events) if (event.op === 'login') loginsOf.set(event.client, [...(loginsOf.get(event.client) ?? []), event]);

  for (const socket of history.sockets) {
    if (socket.session === null) continue;
    // A socket follows its session through the client's logins; one that got no 2xx leaves the
    // socket's session unknown from then on.
    let session: string = socket.session;
    const followed: { session: string; from: number; to: number }[] = [];
    let from = socket.openedAt;
    let knownUntil = Infinity;
    for (const login of loginsOf.get(socket.client) ?? []) {
      if (login.end < socket.openedAt || login.sent !== session) continue;
      if (!ok(login) || login.got === null) {
        knownUntil = login.start;
        break;
      }
      followed.push({ session, from, to: login.end });
      session = login.got;
      from = login.end;
    }
    followed.push({ session, from, to: knownUntil });
    const closedAt = socket.closedAt ?? Infinity;

    for (const span of followed) {
      const ended = definiteEnd.get(span.session);
      if (!ended || ended.how === 'login') continue;
      // The socket held this session when the end was sent, and still did a second later.
      if (ended.start < span.from || ended.end + socketCloseMs > Math.min(span.to, history.observedUntil ?? Infinity)) continue;
      // A node whose subscriber was away (a cutting fault) hears of the end once it is back:
      // within a second of the outage's end, not of the logout (pub/sub is at most once).
      // Overlapping outages (a restart while the node was still back from a cut): the latest end counts.
      const outageEnd = Math.max(ended.end, ...(history.noticeOutages ?? []).filter((window) => window.from <= ended.end && ended.end < window.to).map((window) => window.to));
      const deadline = outageEnd + socketCloseMs;
      if (closedAt > deadline) {
        add(
          'socket-open-after-end',
          `socket ${socket.id} of ${socket.client} (session ${short(span.session)}, node ${socket.node ?? '?'}) ${socket.closedAt === null ? 'never closed' : `closed ${Math.round(closedAt - ended.end)} ms`} after its ${ended.how} (event ${ended.by}) answered`,
          socket.id,
        );
      }
    }
    if (!socket.closedByClient && socket.closeCode === 4401 && socket.closedAt !== null) {
      const span = followed.find((candidate) => candidate.from <= closedAt && closedAt <= candidate.to);
      const missedLogin = (loginsOf.get(socket.client) ?? []).some(
        (login) => login.start < closedAt && login.end >= socket.openedAt && (history.noticeOutages ?? []).some((outage) => login.start < outage.to && login.end > outage.from),
      );
      if (span && !missedLogin && !(possibleEnds.get(span.session) ?? []).some((end) => end.how !== 'login' && end.start < closedAt)) {
        add('socket-closed-without-end', `socket ${socket.id} of ${socket.client} (session ${short(span.session)}) was closed with 4401 though its session was not ended`, socket.id);
      }
    }
  }
}

function describe(event: HttpEvent): string {
  const what = event.sku ?? event.name ?? event.user ?? '';
  return `event ${event.id} (${event.client} ${event.op}${what ? ` ${what}` : ''}${event.node ? ` on ${event.node}` : ''})`;
}

function short(id: string): string {
  return id.slice(0, 8);
}

/** Anomalies counted by kind, for the figures. */
export function countByKind(anomalies: readonly Anomaly[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const anomaly of anomalies) counts[anomaly.kind] = (counts[anomaly.kind] ?? 0) + 1;
  return counts;
}

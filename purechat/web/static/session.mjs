// The page's side of one member's session, as a state machine without I/O.
//
// A port of purechat/client/machine.py: the rules `purechat join` keeps are the ones
// this page keeps, so a line is stored exactly once, in order, whatever the network
// does. It takes what happens (a line typed, a socket opened or closed, a frame from
// the server, time passing) and answers with actions ({type: "transmit", frame},
// {type: "show", item}, {type: "refused", text, action, reason}, {type: "rooms", rooms},
// {type: "reconnect", at}, {type: "giveUp", reason}); app.mjs moves the frames and
// draws, and node can test this file alone.
//
// The rules:
// - every line gets a client message id; it stays pending until the server acks it
//   (or refuses it for good: too long, empty, and then it is handed back, `refused`,
//   so the person's text is not lost) and is sent again on every new socket until
//   then, with the same id, so the server stores it once;
// - a socket carries at most MAX_IN_FLIGHT unacknowledged lines, in order;
// - a refusal that is not about the line (the store is away, the outcome is unknown,
//   the old rate limit) sends the page back: that line and every later one go again,
//   in order, after a pause; the server refuses later lines until it comes again;
// - a socket that closes sends the page back to reconnect (with backoff and jitter)
//   and resume after the last number it saw, in the log (epoch) it saw it in;
// - an ending that trying again cannot help (a refused name, a missing token, another
//   tab of the same session taking the name over, the server's store damaged, a kick
//   or a ban) gives up with the server's sentence;
// - a moderation command (/kick, /ban, ...; moderation.mjs) is a line too: it goes in
//   its place among the lines, is sent again until the server acks it (done, once) or
//   refuses it with a sentence (handed back, `refused`), and moderation events keep the
//   room's topic and this member's role current;
// - reading back (a page of older history, a search, the account's conversations, a
//   read marker) is asked on the joined socket and answered in frames of their own
//   (`history`, `search`, `conversations`, `read`), handed on as actions of those names;
//   a room opened with `dm` is a conversation with that account, resumed as one;
// - living messages: a line may answer one (`replyTo`); an edit, a delete or a reaction
//   (`change`) is a line too, in its place, sent again until acked or refused (handed
//   back, `refused`, with the server's sentence); an edit, delete or reaction event is
//   shown as a `revise` of the message it names; typing goes out at most once every
//   TYPING_EVERY seconds, never queued, and others' typing comes as a `typing` action.

export const MAX_IN_FLIGHT = 64;
// Seconds to wait before sending again after a refusal that was not about the line.
export const RETRY_PAUSE = 0.5;
// Endings after which trying again cannot help: the server said no to this member.
export const FATAL = new Set([
  "INVALID_ARGUMENT",
  "UNAUTHENTICATED",
  "PERMISSION_DENIED",
  "FAILED_PRECONDITION",
]);
// ... and for a page, ABORTED too: another tab with this tab's session (a duplicated
// tab copies it) took the name over, and taking it back would start a tug of war.
const FINAL = new Set([...FATAL, "ABORTED"]);
// How the server says its store is damaged (purechat/status.py's STORE_DAMAGED): an
// UNAVAILABLE ending that starts with it is final, as only its operator can repair it.
export const STORE_DAMAGED = "the server's message store is damaged";
const TRANSIENT = new Set(["STORE_UNAVAILABLE", "OUTCOME_UNKNOWN", "RATE_LIMITED"]);
const KINDS = new Set(["message", "join", "leave", "gap", "reset", "moderation"]);
// The events that change a message shown earlier (its `target`).
export const CHANGES = new Set(["edit", "delete", "reaction"]);
// Seconds between two typing signals, at most (core/living.py's TYPING_EVERY_SECONDS).
export const TYPING_EVERY = 3;
// gRPC status names by number: a close code of 4000 + N ends a session with status N.
const CODE_NAMES = [
  "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
  "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
  "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
  "UNAUTHENTICATED",
];

/** Exponential backoff with jitter between reconnect attempts, in seconds. */
export class Backoff {
  constructor(first = 0.5, cap = 10) {
    this.first = first;
    this.cap = cap;
  }

  delay(attempt, rng = Math.random) {
    return Math.min(this.cap, this.first * 2 ** attempt) * (0.5 + rng() / 2);
  }
}

/** 32 random hex digits, for session and message ids. */
export function randomId() {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

export function utf8Length(text) {
  return new TextEncoder().encode(text).length;
}

/** How a session ended, from the close code when no end frame said it. */
export function endingFromClose(code, reason) {
  if (code === 1000) return { code: "OK", message: reason || "" };
  if (code >= 4000 && code < 4000 + CODE_NAMES.length) {
    return { code: CODE_NAMES[code - 4000], message: reason || "" };
  }
  return { code: "UNAVAILABLE", message: "connection lost" };
}

export function sentence(text) {
  const trimmed = String(text).trim();
  const end = /[.!?]$/.test(trimmed) ? "" : ".";
  return trimmed.charAt(0).toUpperCase() + trimmed.slice(1) + end;
}

export class Session {
  constructor({
    name,
    room,
    dm = "",
    history = 20,
    token = "",
    sessionId = randomId(),
    newId = randomId,
    rng = Math.random,
    backoff = new Backoff(),
  }) {
    this.name = name;
    this.room = room;
    // A conversation with this account instead of a room ("" for a room); `peer` is
    // its name as the server spells it, from the welcome.
    this.dm = dm;
    this.peer = "";
    this.history = history;
    this.token = token;
    this.sessionId = sessionId;
    this.newId = newId;
    this.rng = rng;
    this.backoff = backoff;
    // "away" (waiting to connect, or connecting), "joining", "joined", "done".
    this.phase = "away";
    // Lines not yet settled, in the order typed: id -> {id, text, action, unanswered, unknown}.
    this.pending = new Map();
    this.members = new Set();
    // Names shown otherwise than spelt (look-alikes escaped by the server).
    this.shown = new Map();
    // The name the server gave us, the newest number seen and the log it is in.
    this.myName = "";
    this.lastSeq = null;
    this.epoch = "";
    this.maxTextBytes = null;
    // Messages a second the server takes from this member (0: no limit).
    this.rateLimit = 0;
    // The room's topic, this member's account ("" for a guest) and its role in the room
    // ("member", "operator", "owner", "admin"), from the welcome and moderation events.
    this.topic = "";
    this.account = "";
    this.role = "member";
    this.reconnectAt = 0;
    // What the status line says while away.
    // Why the page is away (the status line counts down to reconnectAt after it).
    this.trouble = "";
    // Ids sent on the current socket, in order (and not yet settled).
    this._sent = new Set();
    this._resendAt = 0;
    this._attempt = 0;
    // The `end` frame of the current socket, if the server sent one.
    this._ending = null;
    // A new socket was asked for (a new name): the old one's end is no trouble.
    this._switching = false;
    // The name before a rename not yet welcomed: back to it if the server refuses the new one.
    this._formerName = null;
    // A page of older history was asked for and not answered yet.
    this.historyAsked = false;
    // When the last typing signal went out (null: none yet).
    this._typedAt = null;
  }

  // -- what the person does ---------------------------------------------------------

  /** Queue a line; it goes out now if it can, or after the next reconnect. A line
   * over the server's limit is handed back at once (`refused`), never queued. */
  send(text, now, action = false, replyTo = 0) {
    if (this.maxTextBytes !== null && utf8Length(text) > this.maxTextBytes) {
      const reason =
        `Message not sent: it is ${utf8Length(text)} bytes and the limit is ` +
        `${this.maxTextBytes} bytes.`;
      const refused = { type: "refused", text, action, reason };
      if (replyTo) refused.replyTo = replyTo;
      return [refused];
    }
    const line = { id: this.newId(), text, action, unanswered: 0, unknown: false, replyTo };
    this.pending.set(line.id, line);
    return this._pump(now);
  }

  /** Queue a change of message seq: {edit: {seq, text}}, {delete: {seq}} or
   * {react: {seq, emoji, remove}} (one key). It goes in its place among the lines,
   * exactly once; `text` says it as typed (handed back if refused); `typed`: from the
   * message box (else from a message's actions). */
  change(frame, text, now, typed = true) {
    const line = { id: this.newId(), text, action: false, unanswered: 0, unknown: false };
    line.change = frame;
    line.typed = typed;
    this.pending.set(line.id, line);
    return this._pump(now);
  }

  /** The person is typing: a typing frame to send, or null (not joined, or one went
   * out less than TYPING_EVERY seconds ago). Never queued: a late one says nothing true. */
  typing(now) {
    if (this.phase !== "joined") return null;
    if (this._typedAt !== null && now - this._typedAt < TYPING_EVERY) return null;
    this._typedAt = now;
    return { type: "transmit", frame: { typing: {} } };
  }

  /** Queue a moderation command (the `moderate` frame's fields, moderation.mjs): it
   * goes in its place among the lines, exactly once. `text` says it as typed (shown
   * while it waits, and handed back if refused); `typed`: from the message box. */
  moderate(fields, text, now, typed = true) {
    const line = { id: this.newId(), text, action: false, unanswered: 0, unknown: false };
    line.command = fields;
    line.typed = typed;
    this.pending.set(line.id, line);
    return this._pump(now);
  }

  /** Whether this member may moderate the room (the server decides each command). */
  get moderator() {
    return this.role === "operator" || this.role === "owner" || this.role === "admin";
  }

  get undelivered() {
    return this.pending.size;
  }

  /** Go on in this room under another name: a new socket, on which the room sees the
   * old name leave and the new one join; what was pending goes on it. */
  rename(name, now) {
    if (this._formerName === null) this._formerName = this.myName || this.name;
    this.name = name;
    this._switching = true;
    this._sent.clear();
    this.phase = "away";
    this.reconnectAt = now;
    return [{ type: "reconnect", at: now }];
  }

  /** Ask the server for the rooms with members (answered by a `rooms` action). */
  askRooms() {
    if (this.phase !== "joined") {
      return [this._show("error", "Not connected: the rooms can be listed once it is back.")];
    }
    return [{ type: "transmit", frame: { rooms: {} } }];
  }

  /** Ask for a page of this room's log before (or around) a number; null when it cannot
   * be asked now (not joined, or a page is on its way). */
  askHistory({ before = null, around = null, limit = 50 }) {
    if (this.phase !== "joined" || this.historyAsked) return null;
    this.historyAsked = true;
    const history = { room: this.room, limit };
    if (before !== null) history.before = before;
    if (around !== null) history.around = around;
    return { type: "transmit", frame: { history } };
  }

  /** Ask for messages holding the words of text, across what the account may read
   * (`page`: the `next` of a previous answer; `limit`: results a page, 0 for the
   * server's default); null when not joined. */
  askSearch(text, page = "", limit = 0) {
    if (this.phase !== "joined") return null;
    const search = { text };
    if (limit) search.limit = limit;
    if (page) search.page = page;
    return { type: "transmit", frame: { search } };
  }

  /** Ask for the account's conversations and read rooms, with unread counts. */
  askConversations() {
    if (this.phase !== "joined" || !this.account) return null;
    return { type: "transmit", frame: { conversations: {} } };
  }

  /** The person has seen this room up to seq: the account's marker moves (its other
   * sessions hear it). Only an account keeps markers; null for a guest. */
  markRead(seq) {
    if (this.phase !== "joined" || !this.account) return null;
    return { type: "transmit", frame: { mark_read: { room: this.room, seq } } };
  }

  // -- what the socket does -----------------------------------------------------------

  /** A socket is open: join, resuming after the last number seen. */
  connected(now) {
    this._sent.clear();
    this._ending = null;
    this._switching = false;
    this.phase = "joining";
    const join = {
      name: this.name,
      room: this.room,
      history: this.lastSeq === null ? this.history : 0,
      session: this.sessionId,
    };
    if (this.token) join.token = this.token;
    if (this.dm) join.dm = this.dm;
    if (this.lastSeq !== null) {
      join.after_seq = this.lastSeq;
      join.epoch = this.epoch;
    }
    return [{ type: "transmit", frame: { join } }];
  }

  /** A frame from the server on the current socket. */
  received(frame, now) {
    if (frame.welcome) return this._welcome(frame.welcome, now);
    if (frame.event) return this._event(frame.event);
    if (frame.ack) return this._ack(frame.ack, now);
    if (frame.error) return this._error(frame.error, now);
    if (frame.rooms) return [{ type: "rooms", rooms: frame.rooms.rooms || [] }];
    if (frame.typing) {
      const { users = [], more = 0 } = frame.typing;
      return [{ type: "typing", users: users.filter((user) => user !== this.myName), more }];
    }
    if (frame.read) return [{ type: "read", room: frame.read.room, seq: frame.read.seq || 0 }];
    if (frame.conversation) {
      // A message to this account in a conversation this socket is not in.
      const { room = "", peer = "", seq = 0, text = "" } = frame.conversation;
      return [{ type: "conversation", room, peer, seq, text }];
    }
    if (frame.history) return this._older(frame.history);
    if (frame.search) {
      const found = (frame.search.found || []).map((each) => ({
        item: itemOf(each.event || {}),
        marks: each.marks || [],
        peer: each.peer || "",
      }));
      return [{ type: "found", found, next: frame.search.next || "" }];
    }
    if (frame.conversations) {
      return [{ type: "conversations", entries: frame.conversations.entries || [] }];
    }
    if (frame.end) this._ending = frame.end;
    return [];
  }

  /** The socket closed; opened: whether it ever opened (else the server was not reached). */
  closed(now, { opened, code, reason }) {
    if (this.phase === "done") return [];
    const ending = this._ending || endingFromClose(code, reason);
    const wasJoined = this.phase === "joined";
    this._ending = null;
    this.phase = "away";
    this._sent.clear();
    this.historyAsked = false;
    if (this._switching) {
      this._switching = false;
      return [{ type: "reconnect", at: this.reconnectAt }];
    }
    if (!opened) return this._trouble("cannot reach the server", now, false);
    if (ending.code === "INVALID_ARGUMENT" && this._formerName !== null) {
      // The new name was refused: the session goes on under the one it had.
      this.name = this._formerName;
      this._formerName = null;
      this.reconnectAt = now;
      const said = sentence(ending.message || "that name is refused");
      return [this._show("error", said), { type: "reconnect", at: now }];
    }
    if (FINAL.has(ending.code)) {
      this.phase = "done";
      const reason = sentence(ending.message || ending.code);
      return [{ type: "giveUp", reason, code: ending.code }];
    }
    if (ending.code === "UNAVAILABLE" && (ending.message || "").startsWith(STORE_DAMAGED)) {
      this.phase = "done";
      const said = `${ending.message}: its operator must repair it; retrying cannot help`;
      return [{ type: "giveUp", reason: sentence(said) }];
    }
    return this._trouble(describe(ending), now, wasJoined);
  }

  /** Time passed: a pause after a refusal may be over. */
  tick(now) {
    return this.phase === "joined" ? this._pump(now) : [];
  }

  /** How to show a name: with look-alike characters escaped, as the server says. */
  shownName(name) {
    return this.shown.get(name) ?? name;
  }

  /** The members, sorted, as shown. */
  memberList() {
    return [...this.members].sort().map((name) => this.shownName(name)).join(", ");
  }

  /** The next time `tick` has something to do, if any (null: none). */
  deadline() {
    if (this.phase === "joined" && this._resendAt && this._unsent().length) {
      return this._resendAt;
    }
    return null;
  }

  // -- internals ----------------------------------------------------------------------

  _welcome(welcome, now) {
    this.phase = "joined";
    this.room = welcome.room;
    this.myName = welcome.name;
    this.members = new Set(welcome.members || []);
    this.shown = new Map(Object.entries(welcome.shown || {}));
    if (this.lastSeq === null) this.lastSeq = welcome.last_seq || 0;
    if (!this.epoch) this.epoch = welcome.epoch || "";
    if (welcome.max_text_bytes) this.maxTextBytes = welcome.max_text_bytes;
    this.rateLimit = welcome.rate_limit || 0;
    this.topic = welcome.topic || "";
    this.account = welcome.account || "";
    this.role = welcome.role || "member";
    this.peer = welcome.peer || "";
    this._formerName = null;
    this._attempt = 0;
    this.trouble = "";
    const here = this.memberList();
    const as = this.shownName(welcome.name);
    const role = this.role === "member" ? "" : ` (${this.role})`;
    const joined = this.peer
      ? `conversation with ${this.shownName(this.peer)}, as ${as}`
      : `joined ${welcome.room} as ${as}${role}; here: ${here}`;
    const shown = [this._show("info", joined)];
    if (this.topic) shown.push(this._show("info", `topic: ${this.topic}`));
    return [...shown, ...this._pump(now)];
  }

  _event(event) {
    if (event.user && event.user_shown) this.shown.set(event.user, event.user_shown);
    const item = itemOf(event);
    const kind = item.kind;
    if (kind === "join") {
      if (this.members.has(event.user) && event.user !== this.myName) return [];
      this.members.add(event.user);
    } else if (kind === "leave") {
      this.members.delete(event.user);
    } else if (kind === "reset") {
      this.epoch = event.epoch || "";
      this.lastSeq = 0;
    } else if (kind !== "gap" && event.seq) {
      this.lastSeq = Math.max(this.lastSeq || 0, event.seq);
    }
    if (item.moderation && !item.history) this._moderated(item.moderation);
    if (CHANGES.has(kind)) return [{ type: "revise", item }];
    return [{ type: "show", item }];
  }

  /** A page of older history: its events as items, oldest first (gaps as gaps). */
  _older(page) {
    this.historyAsked = false;
    for (const event of page.events || []) {
      if (event.user && event.user_shown) this.shown.set(event.user, event.user_shown);
    }
    const items = (page.events || []).map((event) => ({ ...itemOf(event), history: true }));
    return [{ type: "history", items, moreBefore: Boolean(page.more_before) }];
  }

  /** What a moderation event changes for this member: the topic, its role. */
  _moderated(done) {
    if (done.action === "topic") this.topic = done.topic || "";
    if (this.role === "admin" || !this.myName) return;
    if (done.action === "claim" && done.by === this.myName) this.role = "owner";
    else if (done.action === "op" && done.target === this.myName) this.role = "operator";
    else if (done.action === "deop" && done.target === this.myName) this.role = "member";
  }

  _ack(ack, now) {
    this._settle(ack.client_msg_id);
    return this._pump(now);
  }

  _error(error, now) {
    const line = this.pending.get(error.client_msg_id);
    if (!line) this.historyAsked = false; // an ask refused: it may be asked again
    if (line) line.unanswered = Math.max(0, line.unanswered - 1);
    if (line && TRANSIENT.has(error.code)) {
      // Not about the line: it, and everything after it, goes again, in order.
      if (error.code === "OUTCOME_UNKNOWN") line.unknown = true;
      this._rewind(line.id);
      this._resendAt = now + RETRY_PAUSE;
      return [];
    }
    if (!line) return [this._show("error", error.message)];
    this._settle(line.id);
    const refused = { type: "refused", text: line.text, action: line.action, reason: error.message };
    if (line.replyTo) refused.replyTo = line.replyTo;
    if (line.change) refused.change = true;
    if (line.command || line.change) {
      refused.command = true;
      refused.typed = line.typed;
    }
    return [refused, ...this._pump(now)];
  }

  /** Forget that this line and the ones sent after it went out on this socket. */
  _rewind(id) {
    const sent = [...this._sent];
    const at = sent.indexOf(id);
    if (at >= 0) for (const later of sent.slice(at)) this._sent.delete(later);
  }

  _settle(id) {
    if (this.pending.delete(id)) this._sent.delete(id);
  }

  _unsent() {
    return [...this.pending.values()].filter((line) => !this._sent.has(line.id));
  }

  /** Send what may go now, in order. */
  _pump(now) {
    if (this.phase !== "joined" || this._resendAt > now) return [];
    this._resendAt = 0;
    const actions = [];
    for (const line of this._unsent()) {
      if (this._sent.size >= MAX_IN_FLIGHT) break;
      this._sent.add(line.id);
      line.unanswered += 1;
      if (line.command) {
        const moderate = { ...line.command, client_msg_id: line.id };
        actions.push({ type: "transmit", frame: { moderate } });
        continue;
      }
      if (line.change) {
        const [kind, fields] = Object.entries(line.change)[0];
        actions.push({ type: "transmit", frame: { [kind]: { ...fields, client_msg_id: line.id } } });
        continue;
      }
      const send = { text: line.text, client_msg_id: line.id, action: line.action };
      if (line.replyTo) send.reply_to = line.replyTo;
      actions.push({ type: "transmit", frame: { send } });
    }
    return actions;
  }

  /** Back off before connecting again; the room hears of it when the page was in it
   * (retries while away only change `trouble`, shown on the status line). */
  _trouble(what, now, wasJoined) {
    const delay = this.backoff.delay(this._attempt, this.rng);
    this._attempt += 1;
    this.reconnectAt = now + delay;
    this.trouble = what;
    const reconnect = { type: "reconnect", at: this.reconnectAt };
    const said = `${what}; reconnecting in ${delay.toFixed(1)} s`;
    return wasJoined ? [this._show("status", said), reconnect] : [reconnect];
  }

  _show(kind, text) {
    return { type: "show", item: { kind, room: this.room, text, user: "", seq: 0, timeMs: 0 } };
  }
}

/** What the page shows for an event from the server (live, a page of history, a search
 * result): {kind, room, text, user, seq, timeMs, action, history, moderation, replyTo,
 * revision, target, reaction}; a change (edit, delete, reaction) names its `target` and
 * carries the target's `revision` after it ({editedMs, deleted, deletedBy, reactions}). */
export function itemOf(event) {
  const kind = KINDS.has(event.kind) || CHANGES.has(event.kind) ? event.kind : "gap";
  let text = event.text || "";
  if (kind === "reset") {
    text = "the server lost this room's history; numbering starts again";
  } else if (kind === "gap") {
    text = `messages ${(event.seq || 0) + 1} to ${event.gap_until} are no longer kept`;
  }
  return {
    kind,
    room: event.room || "",
    text,
    user: event.user || "",
    seq: event.seq || 0,
    timeMs: event.time_unix_ms || 0,
    action: Boolean(event.action),
    history: Boolean(event.history),
    moderation: kind === "moderation" ? event.moderation || {} : null,
    replyTo: event.reply_to || 0,
    revision: event.revision ? revisionOf(event.revision) : null,
    target: event.target || 0,
    reaction: event.reaction ? { emoji: event.reaction.emoji || "", removed: Boolean(event.reaction.removed) } : null,
  };
}

function revisionOf(revision) {
  return {
    editedMs: revision.edited_unix_ms || 0,
    deleted: Boolean(revision.deleted),
    deletedBy: revision.deleted_by || "",
    reactions: (revision.reactions || []).map((each) => ({
      emoji: each.emoji || "",
      users: [...(each.users || [])],
    })),
  };
}

function describe(ending) {
  const message = ending.message || ending.code.toLowerCase();
  if (ending.code === "UNAVAILABLE") return `disconnected (${message})`;
  return `the server ended the session (${message})`;
}

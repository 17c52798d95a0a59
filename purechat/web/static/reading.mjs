// What is unread, what has been seen, and how search results are marked, without the
// DOM: app.mjs feeds it the server's `conversations` and `read` frames and the messages
// it shows, and draws what it answers; node tests this file alone
// (tests/web/reading.test.mjs).
//
// The server's counts are the truth at the moment it listed them (`conversations`:
// last_seq, read_seq, unread, mentions per room); what the page hears after that is
// counted here, message by message, so a read marker from another session of the
// account (`read`) settles the count at once when it covers what the server counted,
// and asks for the list again when it covers only part of it.

import { visible } from "./text.mjs";

/** Unread counts and read markers, per room and conversation (by the server's room name). */
export class Unread {
  constructor() {
    this.rooms = new Map();
  }

  _entry(room) {
    let entry = this.rooms.get(room);
    if (!entry) {
      // base: the newest number the counts below it came from (the server's, or the
      // room's newest when it was opened: nothing before it is counted).
      entry = { room, peer: "", lastSeq: 0, readSeq: 0, base: 0, unread: 0, mentions: 0 };
      entry.later = new Map(); // seq -> whether it names me, for others' messages after base
      this.rooms.set(room, entry);
    }
    return entry;
  }

  /** The server's list (`conversations` entries): its counts replace what was known,
   * and what was heard since it counted stays counted. */
  listed(entries) {
    for (const listed of entries) {
      const entry = this._entry(listed.room);
      if (listed.peer) entry.peer = listed.peer;
      entry.base = listed.last_seq || 0;
      entry.lastSeq = Math.max(entry.lastSeq, entry.base);
      entry.readSeq = Math.max(entry.readSeq, listed.read_seq || 0);
      const counted = entry.readSeq < entry.base;
      entry.unread = counted ? listed.unread || 0 : 0;
      entry.mentions = counted ? listed.mentions || 0 : 0;
      this._forget(entry);
    }
  }

  /** A room (or conversation) opened on the page, its newest number `lastSeq`: what
   * came before is not counted unless the server's list says so. */
  opened(room, lastSeq, peer = "") {
    const known = this.rooms.has(room);
    const entry = this._entry(room);
    if (peer) entry.peer = peer;
    if (!known) entry.base = lastSeq;
    entry.lastSeq = Math.max(entry.lastSeq, lastSeq);
  }

  /** A message shown live (not history): counted when someone else sent it after what
   * is read. */
  heard(room, seq, { mine = false, mention = false } = {}) {
    const entry = this._entry(room);
    entry.lastSeq = Math.max(entry.lastSeq, seq);
    if (mine || seq <= entry.base || seq <= entry.readSeq) return;
    entry.later.set(seq, mention);
  }

  /** The account read room up to seq (this page, or another session's `read` frame):
   * true when the counts need the server's list again (the marker covers part of
   * what the server counted, which this page never saw one by one). */
  read(room, seq) {
    const entry = this._entry(room);
    if (seq <= entry.readSeq) return false;
    entry.readSeq = seq;
    entry.lastSeq = Math.max(entry.lastSeq, seq);
    this._forget(entry);
    if (seq >= entry.base) {
      entry.unread = 0;
      entry.mentions = 0;
      return false;
    }
    return entry.unread > 0;
  }

  /** {unread, mentions, readSeq, lastSeq, peer} of a room (zeros for one not known). */
  of(room) {
    const entry = this.rooms.get(room);
    if (!entry) return { unread: 0, mentions: 0, readSeq: 0, lastSeq: 0, peer: "" };
    let mentions = entry.mentions;
    for (const named of entry.later.values()) if (named) mentions += 1;
    return {
      unread: entry.unread + entry.later.size,
      mentions,
      readSeq: entry.readSeq,
      lastSeq: entry.lastSeq,
      peer: entry.peer,
    };
  }

  /** The conversations known (with a peer), by the peer's name: [{room, peer, ...of}]. */
  conversations() {
    return [...this.rooms.values()]
      .filter((entry) => entry.peer)
      .map((entry) => ({ room: entry.room, ...this.of(entry.room) }))
      .sort((a, b) => a.peer.localeCompare(b.peer));
  }

  _forget(entry) {
    for (const seq of entry.later.keys()) {
      if (seq <= entry.readSeq || seq <= entry.base) entry.later.delete(seq);
    }
  }
}

/** The newest message a person can see: the highest seq of `shown` ({seq, top, bottom},
 * in the log's order) whose box meets the log's visible band [top, bottom]; 0 for none. */
export function newestInView(shown, top, bottom) {
  let newest = 0;
  for (const line of shown) {
    if (line.seq && line.bottom > top && line.top < bottom) newest = Math.max(newest, line.seq);
  }
  return newest;
}

/** The number to mark read, or 0: only what was seen (the tab visible and focused, the
 * message in view), and only past what is marked already or asked to be. */
export function toMark({ looking, seen, readSeq, asked }) {
  if (!looking || !seen) return 0;
  return seen > Math.max(readSeq, asked) ? seen : 0;
}

/** A search result's text as pieces to draw: {kind: "text" | "match", text}, the
 * matched words (the server's `marks`: [start, end) pairs counted in code points, as
 * Python counts) as matches, control characters shown as escapes. */
export function markedPieces(text, marks) {
  const points = Array.from(String(text));
  const pieces = [];
  let at = 0;
  for (let n = 0; n + 1 < marks.length; n += 2) {
    const start = Math.max(at, Math.min(marks[n], points.length));
    const end = Math.max(start, Math.min(marks[n + 1], points.length));
    if (start > at) pieces.push({ kind: "text", text: visible(points.slice(at, start).join("")) });
    if (end > start) pieces.push({ kind: "match", text: visible(points.slice(start, end).join("")) });
    at = end;
  }
  if (at < points.length) pieces.push({ kind: "text", text: visible(points.slice(at).join("")) });
  return pieces;
}

/** Where a result or an entry is, as a person reads it: the room, or "with PEER". */
export function placeName(room, peer) {
  return peer ? `with ${visible(peer)}` : visible(room);
}

// The page: the join form (and logging in), the rooms (one session and one socket
// each), the drawing. Every decision about what to send and when lives in session.mjs;
// how moderation commands are read in moderation.mjs; how text is shown (links,
// mentions, escapes, dates) in text.mjs; what is unread and what is in view in
// reading.mjs; this file moves frames and draws.
//
// Conversations (with one account each) are rooms of the tab too, opened with `dm`:
// listed under "Conversations" with the account's others (the server's `conversations`
// list, asked for on joining, when the person comes back to the tab, and every
// CONVERSATIONS_EVERY seconds while it is visible), each with its unread count and a
// mark for mentions. What a person has seen (the tab visible and focused, the message in
// the log's view) is marked read for the account, and every session of the account
// hears it (`read`), so two pages agree. Scrolling to the top of a log asks for the page
// before its oldest message; the search box asks across what the account may read.
//
// Logging in (or registering) is done over a socket of its own before the first room
// opens: the server answers with a session token, which stays in this page's memory
// (never stored, never in a URL) and goes in every room's join, as a token does. The
// password leaves the form once it has been used.
//
// Living messages (living.mjs): each message has an actions button (reply, react,
// edit and delete where the server would take them), a reply is drawn with a quote of
// the message it answers (from what the page holds), an edit, delete or reaction
// redraws its message in place, and who else is typing shows under the log.
//
// Whatever came from the server (names, text) is put on the page as text, never as
// HTML, and control characters are shown as escapes, never obeyed.

import {
  CommandUsage,
  USAGE,
  formatDuration,
  command as moderation,
  typed,
} from "./moderation.mjs";
import {
  COMMON_EMOJI,
  LIVING_USAGE,
  TypingShown,
  livingCommand,
  quoteOf,
  reactionsShown,
  revised,
  tombstone,
} from "./living.mjs";
import { Unread, markedPieces, newestInView, placeName, toMark } from "./reading.mjs";
import { Session, randomId, sentence, utf8Length } from "./session.mjs";
import { dayLabel, dayOf, mentions, pieces, visible } from "./text.mjs";

const $ = (id) => document.getElementById(id);
const ui = {
  joinView: $("join-view"),
  joinForm: $("join-form"),
  name: $("name"),
  room: $("room"),
  password: $("password"),
  token: $("token"),
  join: $("join"),
  register: $("register"),
  joinError: $("join-error"),
  page: $("page"),
  // What shows once in a room (the join form shows alone before).
  inRoom: [$("room-header"), $("room-list"), $("room-view"), $("here")],
  roomTitle: $("room-title"),
  topic: $("topic"),
  status: $("status"),
  notify: $("notify"),
  leave: $("leave"),
  rooms: $("rooms"),
  roomForm: $("room-form"),
  newRoom: $("new-room"),
  conversations: $("conversations"),
  noConversations: $("no-conversations"),
  dmForm: $("dm-form"),
  dmName: $("dm-name"),
  searchForm: $("search-form"),
  searchText: $("search-text"),
  searchView: $("search-view"),
  searchHeading: $("search-heading"),
  closeSearch: $("close-search"),
  found: $("found"),
  moreFound: $("more-found"),
  logs: $("logs"),
  pending: $("pending"),
  members: $("members"),
  memberCount: $("member-count"),
  sendForm: $("send-form"),
  line: $("line"),
  sendProblem: $("send-problem"),
  announcer: $("announcer"),
  typing: $("typing"),
  sendTyping: $("send-typing"),
  composing: $("composing"),
  composingWhat: $("composing-what"),
  cancelComposing: $("cancel-composing"),
};
// Recent messages shown on joining a room.
const HISTORY = 50;
// Lines a room's log keeps; older ones leave the page (the server keeps the history).
const MAX_LINES = 2000;
// Lines waiting to be sent shown under the log, at most (the status line counts them all).
const PENDING_SHOWN = 3;
// Announcements the live region keeps (a screen reader reads each once, as it comes).
const ANNOUNCED = 5;
// Rooms open in one tab, at most (each is a socket).
const MAX_ROOMS = 20;
const DEFAULT_ROOM = "lobby";
// Messages asked for at a time when scrolling up (and around a search result).
const OLDER_PAGE = 50;
// How near the top of a log (in pixels) a scroll asks for older messages.
const NEAR_TOP = 40;
// Seconds between asks for the conversation list while the tab is visible: the server
// tells a session of new messages in its own rooms only, so one in a conversation not
// open here is learnt from the list.
const CONVERSATIONS_EVERY = 30;
// Search results asked for at a time.
const FOUND_PAGE = 20;
const HELP = [
  "Enter sends; Shift+Enter starts a new line (a pasted block is one message).",
  "/join ROOM opens another room, /leave closes this one, /rooms lists the rooms with members,",
  "/msg NAME opens a conversation with that account (or its name's menu: Message NAME),",
  "/search WORDS searches what you may read; scroll up for older messages,",
  ...Object.values(LIVING_USAGE).map(([usage, about]) => `${usage}: ${about} (or the message's ⋯ button)`),
  "/who lists who is here, /me ACTION says that you do something, /nick NAME changes your name,",
  "/help shows this; //text sends a line that starts with /.",
  "Moderation (the room's owner and operators; DURATION like 10m, 2h, 7d; or a member's menu):",
  ...Object.values(USAGE).map(([usage, about]) => `${usage}: ${about}`),
];
// What a member's menu offers a moderator: [label, action, seconds, for the owner only].
const MENU = [
  ["Kick", "kick", null, false],
  ["Mute for 10 minutes", "mute", 600, false],
  ["Unmute", "unmute", null, false],
  ["Ban for an hour", "ban", 3600, false],
  ["Ban for good", "ban", null, false],
  ["Make an operator", "op", null, true],
  ["No longer an operator", "deop", null, true],
];

const now = () => performance.now() / 1000;

/** One room (or conversation) of the tab: its session, its socket and its log.
 * `key` is its place in state.rooms (a room's name, or "dm NAME"); `name` is what a
 * person reads ("lobby", "with bob"). */
class Room {
  constructor(key, name, session) {
    this.key = key;
    this.name = name;
    this.session = session;
    this.socket = null;
    this.timer = null;
    this.countdown = null;
    // Its first welcome was counted in state.unread.
    this.opened = false;
    // Older messages: false once the server said there are none before the oldest shown.
    this.moreBefore = true;
    // A search result to show once the room is in (its number), and whether the page
    // around it was asked for.
    this.jumpTo = 0;
    this.jumpAsked = false;
    this.inHistory = false;
    // The local day of the newest dated line, for date separators.
    this.lastDay = null;
    // The messages shown, by number (as they are now: edits, deletes and reactions
    // applied), for quotes and redrawing; at most MAX_LINES.
    this.messages = new Map();
    // Who else is typing here, and the timer that takes them off when their time is up.
    this.typing = new TypingShown();
    this.typingTimer = null;
    // What the message box is doing: null, or {mode: "reply" | "edit", seq}.
    this.composing = null;
    this.log = document.createElement("ol");
    this.log.className = "log";
    this.log.tabIndex = 0; // scrollable by keyboard
    const about = session.dm ? `Messages ${visible(name)}` : `Messages in ${visible(name)}`;
    this.log.setAttribute("aria-label", about);
    this.log.hidden = true;
    // Where the log was scrolled to when last seen (scrolled: which way it moved).
    this.lastScrollTop = 0;
    this.log.addEventListener("scroll", () => scrolled(this));
    this.log.addEventListener("keydown", (key) => moveAmongActions(this, key));
    ui.logs.append(this.log);
    // Its place in the room list: one button, kept (so focus stays on it as it changes).
    this.button = document.createElement("button");
    this.button.type = "button";
    this.button.className = "room";
    if (session.dm) this.button.dataset.dm = session.dm;
    else this.button.dataset.room = name;
    this.button.addEventListener("click", () => {
      activate(this);
      ui.line.focus();
    });
    this.entry = document.createElement("li");
    this.entry.append(this.button);
    // A conversation's entry is drawn in the conversation list (renderConversations).
    if (!session.dm) ui.rooms.append(this.entry);
  }

  /** Its room's name on the server (a conversation's `@dm:…`), once welcomed. */
  get serverRoom() {
    return this.opened ? this.session.room : "";
  }
}

const state = {
  rooms: new Map(),
  active: null,
  name: "",
  token: "",
  // The member whose menu is open (its name), and what the member list was drawn from.
  menuOpen: "",
  membersDrawn: "",
  // Unread counts and read markers of every room and conversation the account has.
  unread: new Unread(),
  // The account ("" for a guest; null until a welcome said).
  account: null,
  // The words searched for, and where the next page of results starts ("": no more).
  searched: "",
  foundNext: "",
  conversationsTimer: null,
  // The last "wrote to you" said (room#seq): each open socket of the tab hears it.
  lastNotice: "",
};

// -- joining and leaving ---------------------------------------------------------------

function sessionId() {
  // Kept for this tab, so a reload takes its own name over instead of becoming name-2.
  let id = sessionStorage.getItem("purechat-session");
  if (!id) {
    id = randomId();
    sessionStorage.setItem("purechat-session", id);
  }
  return id;
}

// The name is remembered as a value (it is yours); the room is a placeholder, so what
// is typed there is the room, not appended to one.
ui.name.value = localStorage.getItem("purechat-name") || "";

ui.joinForm.addEventListener("submit", (submitted) => {
  submitted.preventDefault();
  enter(false);
});

ui.register.addEventListener("click", () => {
  if (!ui.name.value.trim() || !ui.password.value) {
    ui.joinError.textContent = "To register, choose a name and a password (8 characters or more).";
    (ui.name.value.trim() ? ui.password : ui.name).focus();
    return;
  }
  enter(true);
});

/** Join: with a password, log in (or register, then log in) first. */
async function enter(registering) {
  const name = ui.name.value.trim();
  const password = ui.password.value;
  localStorage.setItem("purechat-name", name);
  ui.joinError.textContent = "";
  // The token stays in this page's memory: never stored, never in a URL.
  state.token = ui.token.value.trim();
  state.name = name;
  if (password || registering) {
    busy(true);
    try {
      const session = await logIn(name, password, registering);
      state.token = session.token;
      state.name = session.account;
      ui.password.value = "";
    } catch (refused) {
      busy(false);
      ui.joinError.textContent = refused.message;
      ui.password.focus();
      return;
    }
    busy(false);
  }
  showRooms(true);
  openRoom(ui.room.value.trim() || DEFAULT_ROOM);
  fitLine();
  ui.line.focus();
}

function busy(waiting) {
  ui.join.disabled = waiting;
  ui.register.disabled = waiting;
  ui.joinForm.setAttribute("aria-busy", String(waiting));
}

function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/ws`;
}

/** Log in (registering first, when asked) over a socket of its own: resolves to the
 * session ({token, account, expires_unix_ms}); rejects with the server's sentence. */
function logIn(name, password, registering) {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(socketUrl());
    let settled = false;
    const settle = (outcome, value) => {
      if (settled) return;
      settled = true;
      socket.close(1000);
      outcome(value);
    };
    socket.addEventListener("open", () => {
      const kind = registering ? "register" : "login";
      socket.send(JSON.stringify({ [kind]: { name, password } }));
    });
    socket.addEventListener("message", (message) => {
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      if (frame.registered) {
        socket.send(JSON.stringify({ login: { name, password } }));
      } else if (frame.session) {
        settle(resolve, frame.session);
      } else if (frame.error) {
        settle(reject, new Error(sentence(frame.error.message)));
      }
    });
    socket.addEventListener("close", (closed) => {
      const why = closed.reason || "cannot reach the server: try again in a moment";
      settle(reject, new Error(sentence(why)));
    });
  });
}

ui.leave.addEventListener("click", () => {
  if (state.active) closeRoom(state.active, "");
});

ui.roomForm.addEventListener("submit", (submitted) => {
  submitted.preventDefault();
  const name = ui.newRoom.value.trim();
  const problem = roomProblem(name);
  if (problem) {
    problemAtSend(problem, ui.newRoom);
    return;
  }
  ui.newRoom.value = "";
  ui.newRoom.removeAttribute("aria-invalid");
  ui.sendProblem.textContent = "";
  openRoom(name);
  ui.line.focus();
});

/** The rooms, or (before joining and after the last room is left) the join form. */
function showRooms(inRoom) {
  ui.joinView.hidden = inRoom;
  for (const part of ui.inRoom) part.hidden = !inRoom;
  ui.page.classList.toggle("in-room", inRoom);
}

/** The first rules a room name breaks, if any (the server checks all of them). */
function roomProblem(name) {
  if (!name) return "Type the name of a room to join.";
  if (/\s/.test(name)) return "Room names cannot contain spaces.";
  if (name.length > 64) return "Room names are at most 64 characters.";
  return "";
}

/** Open a room (or show it, when it is open already); the room, or null. */
function openRoom(name) {
  return openIn(name, name, { room: name });
}

/** Open the conversation with an account (or show it); the room, or null. */
function openConversation(peer) {
  const open = [...state.rooms.values()].find(
    (room) => room.session.dm && room.session.peer.toLowerCase() === peer.toLowerCase(),
  );
  if (open) {
    activate(open);
    return open;
  }
  return openIn(`dm ${peer.toLowerCase()}`, `with ${peer}`, { room: "", dm: peer });
}

function openIn(key, name, where) {
  let room = state.rooms.get(key);
  if (!room) {
    if (state.rooms.size >= MAX_ROOMS) {
      problemAtSend(`At most ${MAX_ROOMS} rooms and conversations can be open in one tab.`);
      return null;
    }
    const session = new Session({
      name: state.name,
      token: state.token,
      history: HISTORY,
      sessionId: sessionId(),
      ...where,
    });
    room = new Room(key, name, session);
    state.rooms.set(key, room);
    connect(room);
  }
  activate(room);
  return room;
}

function activate(room) {
  const previous = state.active;
  if (previous !== room) state.menuOpen = "";
  if (previous && previous !== room) previous.log.hidden = true;
  state.active = room;
  room.log.hidden = false;
  if (!room.jumpTo) room.log.scrollTop = room.log.scrollHeight;
  markSeen(room);
  render();
}

/** Leave a room: its socket closes; the last room leaves to the join form, with reason. */
function closeRoom(room, reason) {
  const socket = room.socket;
  room.socket = null;
  clearTimeout(room.timer);
  clearTimeout(room.countdown);
  clearTimeout(room.typingTimer);
  if (socket) socket.close(1000);
  room.log.remove();
  room.entry.remove();
  state.rooms.delete(room.key);
  if (state.rooms.size === 0) {
    state.active = null;
    // Back at the form: whoever joins next (another account, a guest) starts afresh.
    clearTimeout(state.conversationsTimer);
    state.account = null;
    state.unread = new Unread();
    ui.searchView.hidden = true;
    ui.joinError.textContent = reason;
    showRooms(false);
    document.title = "purechat";
    ui.name.focus();
    return;
  }
  if (state.active === room) activate([...state.rooms.values()].at(-1));
  if (reason) note(state.active, "error", `${visible(room.name)}: ${reason}`);
  render();
}

// -- the sockets -----------------------------------------------------------------------

function connect(room) {
  const socket = new WebSocket(socketUrl());
  let opened = false;
  room.socket = socket;
  const current = () => room.socket === socket && state.rooms.get(room.key) === room;
  socket.addEventListener("open", () => {
    if (!current()) return;
    opened = true;
    apply(room, room.session.connected(now()));
  });
  socket.addEventListener("message", (message) => {
    if (!current()) return;
    let frame;
    try {
      frame = JSON.parse(message.data);
    } catch {
      return;
    }
    apply(room, room.session.received(frame, now()));
  });
  socket.addEventListener("close", (closed) => {
    if (!current()) return;
    room.socket = null;
    const ending = { opened, code: closed.code, reason: closed.reason };
    apply(room, room.session.closed(now(), ending));
  });
  render();
}

function apply(room, actions) {
  for (const action of actions) {
    if (action.type === "transmit") {
      const socket = room.socket;
      // On a socket that is going away the line stays pending and goes on the next.
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(action.frame));
    } else if (action.type === "show") {
      show(room, action.item);
    } else if (action.type === "revise") {
      revise(room, action.item);
    } else if (action.type === "typing") {
      room.typing.heard(action.users, action.more, now());
      renderTyping();
    } else if (action.type === "refused") {
      refused(room, action);
    } else if (action.type === "rooms") {
      listRooms(room, action.rooms);
    } else if (action.type === "read") {
      // This page or another session of the account read up to there.
      if (state.unread.read(action.room, action.seq)) askConversations();
    } else if (action.type === "conversation") {
      wroteToMe(action);
    } else if (action.type === "conversations") {
      state.unread.listed(action.entries);
    } else if (action.type === "history") {
      older(room, action.items, action.moreBefore);
    } else if (action.type === "found") {
      showFound(room, action.found, action.next);
    } else if (action.type === "reconnect") {
      // A new socket is wanted now (a new name): the old one is let go, unheard.
      const socket = room.socket;
      room.socket = null;
      if (socket) socket.close(1000);
    } else if (action.type === "giveUp") {
      // A session the server no longer takes (ended, expired) is logged in again.
      if (action.code === "UNAUTHENTICATED") state.token = "";
      closeRoom(room, action.reason);
      return;
    }
  }
  if (!room.opened && room.session.phase === "joined") welcomed(room);
  if (room.jumpTo && !room.jumpAsked && room.session.phase === "joined") jump(room);
  schedule(room);
  render();
}

/** A room's first welcome: counted from here on, its conversation named, the
 * account's conversations asked for (once a page). */
function welcomed(room) {
  const session = room.session;
  room.opened = true;
  state.unread.opened(session.room, session.lastSeq || 0, session.peer);
  if (session.peer) {
    room.name = `with ${session.peer}`;
    room.log.setAttribute("aria-label", `Messages with ${visible(session.peer)}`);
  }
  if (state.account === null) {
    state.account = session.account;
    askConversations();
  }
}

/** Send a frame on a joined room's socket (an ask answered on it). */
function transmit(room, action) {
  const socket = room?.socket;
  if (action && socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify(action.frame));
    return true;
  }
  return false;
}

/** A joined room of an account, to ask on: the one in front, if it can. */
function asker() {
  const joined = (room) => room.session.phase === "joined";
  if (state.active && joined(state.active)) return state.active;
  return [...state.rooms.values()].find(joined) || null;
}

/** Ask for the account's conversations again (and again every CONVERSATIONS_EVERY s). */
function askConversations() {
  clearTimeout(state.conversationsTimer);
  if (!state.account) return;
  const room = asker();
  if (room) transmit(room, room.session.askConversations());
  state.conversationsTimer = setTimeout(() => {
    if (!document.hidden) askConversations();
    else state.conversationsTimer = null;
  }, CONVERSATIONS_EVERY * 1000);
}

/** One timer per room: the next reconnect while away, or the session's next deadline. */
function schedule(room) {
  clearTimeout(room.timer);
  const session = room.session;
  if (session.phase === "done") return;
  const at = session.phase === "away" && !room.socket ? session.reconnectAt : session.deadline();
  if (at === null) return;
  room.timer = setTimeout(() => wake(room), Math.max(0, (at - now()) * 1000));
}

function wake(room) {
  if (state.rooms.get(room.key) !== room) return;
  const session = room.session;
  if (session.phase === "away" && !room.socket) {
    connect(room);
  } else {
    apply(room, session.tick(now()));
  }
}

// -- typing ----------------------------------------------------------------------------

// Enter sends; Shift+Enter (or a paste of several lines) makes a message of several lines.
// Up in an empty box edits my last message here; Escape stops replying or editing.
ui.line.addEventListener("keydown", (key) => {
  const room = state.active;
  if (key.key === "Enter" && !key.shiftKey && !key.isComposing) {
    key.preventDefault();
    ui.sendForm.requestSubmit();
  } else if (key.key === "ArrowUp" && !ui.line.value && room && lastMine(room)) {
    key.preventDefault();
    compose(room, "edit", lastMine(room));
  } else if (key.key === "Escape" && room?.composing) {
    key.preventDefault();
    compose(room, null);
  }
});
ui.line.addEventListener("input", fitLine);

// Others see that I type (at most once every 3 s), unless the setting says not to.
ui.sendTyping.checked = localStorage.getItem("purechat-typing") !== "off";
ui.sendTyping.addEventListener("change", () => {
  localStorage.setItem("purechat-typing", ui.sendTyping.checked ? "on" : "off");
});
ui.line.addEventListener("input", () => {
  const room = state.active;
  const text = ui.line.value;
  if (!room || !ui.sendTyping.checked || !text.trim() || text.startsWith("/")) return;
  transmit(room, room.session.typing(now()));
});

ui.cancelComposing.addEventListener("click", () => {
  if (state.active) compose(state.active, null);
  ui.line.focus();
});

/** The box replies to, or edits, message seq (mode null: neither any more). An edit
 * puts the message's text in the box. */
function compose(room, mode, seq = 0) {
  const was = room.composing;
  room.composing = mode ? { mode, seq } : null;
  if (mode === "edit") {
    ui.line.value = room.messages.get(seq)?.text ?? "";
  } else if (was?.mode === "edit") {
    ui.line.value = "";
  }
  fitLine();
  renderComposing();
  if (mode) ui.line.focus();
}

/** The number of my last message shown here that is not deleted (0: none). */
function lastMine(room) {
  let last = 0;
  for (const [seq, item] of room.messages) {
    if (item.user === room.session.myName && !item.revision?.deleted && seq > last) last = seq;
  }
  return last;
}

ui.sendForm.addEventListener("submit", (submitted) => {
  submitted.preventDefault();
  const room = state.active;
  const text = ui.line.value;
  if (!room || !text.trim()) return;
  // The box is emptied only once the line is taken: a refused one stays, marked.
  if (text.startsWith("/") && !text.startsWith("//")) {
    if (command(room, text)) accepted();
    return;
  }
  const line = text.startsWith("//") ? text.slice(1) : text;
  const composing = room.composing;
  if (composing?.mode === "edit") {
    const edit = { edit: { seq: composing.seq, text: line } };
    room.composing = null;
    accepted();
    apply(room, room.session.change(edit, `/edit ${composing.seq} ${line}`, now()));
    return;
  }
  const replyTo = composing?.mode === "reply" ? composing.seq : 0;
  const actions = room.session.send(line, now(), false, replyTo);
  if (!actions.some((action) => action.type === "refused")) {
    room.composing = null;
    accepted();
  }
  apply(room, actions);
});

/** The box's text was taken: empty it, and whatever was said about it before. */
function accepted() {
  ui.line.value = "";
  ui.line.removeAttribute("aria-invalid");
  ui.sendProblem.textContent = "";
  fitLine();
  renderComposing();
}

/** A sentence beside the box, and the control whose text it is about (the message
 * box, unless told) marked; the control keeps its text. */
function problemAtSend(sentence, control = ui.line) {
  control.setAttribute("aria-invalid", "true");
  ui.sendProblem.textContent = sentence;
}

/** A line the server (or the session, knowing its limit) will not take: its text goes
 * back into the box when the box is free, with the sentence beside it. A command from a
 * member's menu (not typed) is told in the room's log instead. */
function refused(room, { text, action, reason, command: isCommand, typed: wasTyped, change, replyTo }) {
  if (change && !wasTyped && room === state.active) {
    // From a message's actions: the box keeps what it holds.
    problemAtSend(reason, ui.line);
    return;
  }
  if (isCommand && !wasTyped) {
    note(room, "error", reason);
    return;
  }
  if (replyTo && room === state.active && !ui.line.value) {
    room.composing = { mode: "reply", seq: replyTo };
    renderComposing();
  }
  const line = action ? `/me ${text}` : text;
  if (room !== state.active) {
    note(room, "error", `${reason} (${excerpt(line)})`);
    return;
  }
  if (!ui.line.value || ui.line.value === line) {
    ui.line.value = line;
    fitLine();
    problemAtSend(reason);
  } else {
    problemAtSend(`${reason} (${excerpt(line)})`);
  }
}

function excerpt(text, most = 40) {
  const first = visible(text.split("\n", 1)[0]);
  return `“${first.length <= most ? first : `${first.slice(0, most - 1)}…`}”`;
}

/** The box grows with its lines, up to a few, then scrolls (and only then). */
function fitLine() {
  const most = 160;
  ui.line.style.height = "auto";
  const needed = ui.line.scrollHeight + ui.line.offsetHeight - ui.line.clientHeight;
  ui.line.style.height = `${Math.min(needed, most)}px`;
  ui.line.classList.toggle("tall", needed > most);
}

/** A command; false when it is refused (the box keeps it, with why beside it). */
function command(room, text) {
  const [word, ...rest] = text.slice(1).split(" ");
  const argument = rest.join(" ").trim();
  const session = room.session;
  const usage = {
    join: "/join ROOM",
    me: "/me ACTION",
    nick: "/nick NAME",
    msg: "/msg NAME",
    search: "/search WORDS",
  };
  if (usage[word] && !argument) {
    problemAtSend(`Usage: ${usage[word]}.`);
    return false;
  }
  if (Object.hasOwn(LIVING_USAGE, word)) {
    let asked;
    try {
      asked = livingCommand(word, argument, {
        lastMine: lastMine(room),
        reacted: (seq, emoji) => hasReacted(room, seq, emoji),
      });
    } catch (wrong) {
      if (!(wrong instanceof CommandUsage)) throw wrong;
      problemAtSend(wrong.message);
      return false;
    }
    if (asked.reply) {
      const actions = session.send(asked.reply.text, now(), false, asked.reply.seq);
      apply(room, actions);
      return !actions.some((action) => action.type === "refused");
    }
    apply(room, session.change(asked.change, text.trim(), now()));
    return true;
  }
  if (word === "me") {
    const actions = session.send(argument, now(), true);
    apply(room, actions);
    return !actions.some((action) => action.type === "refused");
  }
  if (word === "join") {
    const problem = roomProblem(argument);
    if (problem) {
      problemAtSend(problem);
      return false;
    }
    openRoom(argument);
  } else if (word === "msg" || word === "dm") {
    const problem = conversationProblem(argument);
    if (problem) {
      problemAtSend(problem);
      return false;
    }
    openConversation(argument);
  } else if (word === "search") {
    search(argument);
  } else if (word === "leave" || word === "part") {
    closeRoom(room, "");
  } else if (word === "nick") {
    const problem = nameProblem(argument);
    if (problem) {
      problemAtSend(problem);
      return false;
    }
    state.name = argument;
    localStorage.setItem("purechat-name", argument);
    for (const each of state.rooms.values()) apply(each, each.session.rename(argument, now()));
  } else if (word === "rooms") {
    apply(room, session.askRooms());
  } else if (word === "who") {
    note(room, "info", `here: ${session.memberList() || "nobody"}`);
  } else if (word === "help") {
    for (const line of HELP) note(room, "info", line);
  } else if (word === "topic" && !argument) {
    note(room, "info", session.topic ? `topic: ${session.topic}` : "This room has no topic.");
  } else if (Object.hasOwn(USAGE, word)) {
    let fields;
    try {
      fields = typed(word, argument, session.members);
    } catch (wrong) {
      if (!(wrong instanceof CommandUsage)) throw wrong;
      problemAtSend(wrong.message);
      return false;
    }
    apply(room, session.moderate(fields, text.trim(), now()));
  } else {
    problemAtSend(`Unknown command /${visible(word)}: /help lists them.`);
    return false;
  }
  return true;
}

/** The first rules a name breaks, if any (the server checks all of them). */
function nameProblem(name) {
  if (name.length > 32) return "Names are at most 32 characters.";
  if (/[\p{Cc}\p{Cf}]/u.test(name)) return "Names cannot contain invisible characters.";
  return "";
}

/** Why a conversation with `name` cannot be started from here, if it cannot. */
function conversationProblem(name) {
  if (state.account === "") {
    return "Conversations are between accounts: join with your account's password to have them.";
  }
  if (!name || /\s/.test(name)) return "Type the name of an account to write to.";
  if (state.account && name.toLowerCase() === state.account.toLowerCase()) {
    return "A conversation is with another account.";
  }
  return nameProblem(name);
}

function note(room, kind, text) {
  show(room, { kind, room: room.name, text, user: "", seq: 0, timeMs: 0 });
}

function listRooms(room, rooms) {
  const entry = line("info", "");
  const listed = span("text", "rooms: ");
  entry.append(listed);
  if (!rooms.length) {
    listed.append("none with members");
  } else {
    rooms.forEach((each, n) => {
      const choice = document.createElement("button");
      choice.type = "button";
      choice.className = "inline";
      choice.textContent = visible(each.name);
      choice.addEventListener("click", () => {
        openRoom(each.name);
        ui.line.focus();
      });
      listed.append(n ? ", " : "", choice, ` (${each.members})`);
    });
  }
  append(room, entry);
}

// -- drawing ---------------------------------------------------------------------------

// Older history: the log shows what came since joining (and the last HISTORY messages
// before); a scroll to the top asks for the page before the oldest shown (`older`),
// drawn above it with its date separators and gaps, the reading position kept.

function show(room, item) {
  const session = room.session;
  if (item.history && !room.inHistory) {
    room.inHistory = true;
    const divider = line("divider", "earlier messages");
    // The first one is where pages of older messages go (oldestShown, older).
    if (!room.log.querySelector("li.earlier")) divider.classList.add("earlier");
    append(room, divider);
  } else if (!item.history && room.inHistory && item.kind !== "info") {
    room.inHistory = false;
    append(room, line("divider", "new messages"));
  }
  if (item.timeMs && dayOf(item.timeMs) !== room.lastDay) {
    room.lastDay = dayOf(item.timeMs);
    append(room, dayLine(item.timeMs));
  }
  if (item.kind === "message" && item.seq) {
    keep(room, item);
    if (!item.history && room.typing.until.has(item.user)) {
      room.typing.said(item.user);
      renderTyping();
    }
  }
  const entry = draw(room, item);
  append(room, entry);
  if (item.kind === "message" && !item.history && room.opened) {
    const mine = item.user === session.myName;
    const mention = !mine && mentions(item.text, session.myName);
    state.unread.heard(session.room, item.seq, { mine, mention });
    markSeen(room);
  }
}

/** Hold a message shown (for quotes, edits and redrawing), at most MAX_LINES. */
function keep(room, item) {
  room.messages.set(item.seq, item);
  if (room.messages.size > MAX_LINES) room.messages.delete(Math.min(...room.messages.keys()));
}

/** An edit, delete or reaction of a message: the message as it is now, redrawn in its
 * place (and the replies quoting it); one not shown here changes nothing on the page. */
function revise(room, change) {
  const target = room.messages.get(change.target);
  if (!target || !change.revision) return;
  const changed = revised(target, change);
  room.messages.set(change.target, changed);
  redraw(room, change.target);
  for (const reply of room.log.querySelectorAll(`li.message[data-reply-to="${change.target}"]`)) {
    redraw(room, Number(reply.dataset.seq));
  }
  if (room === state.active && !change.history) {
    const who = visible(room.session.shownName(change.user));
    if (change.kind === "edit") announce(`${who} edited #${change.target}: ${visible(changed.text)}`);
    else if (change.kind === "delete") announce(`#${change.target}: ${tombstone(changed.revision)}`);
    else if (change.reaction && !change.reaction.removed) {
      announce(`${who} reacted ${change.reaction.emoji} to #${change.target}`);
    }
  }
  if (room.composing?.seq === change.target && changed.revision?.deleted) compose(room, null);
}

/** Draw message seq again from what the page holds, the focus kept where it was. */
function redraw(room, seq) {
  const old = room.log.querySelector(`li.message[data-seq="${seq}"]`);
  const item = room.messages.get(seq);
  if (!old || !item) return;
  const focused = old.contains(document.activeElement) ? document.activeElement.dataset.focusKey : null;
  const fresh = draw(room, item, true);
  for (const kept of ["found", "history"]) if (old.classList.contains(kept)) fresh.classList.add(kept);
  const wasStop = old.querySelector("button.actions-toggle")?.tabIndex === 0;
  old.replaceWith(fresh);
  if (wasStop) rove(room, fresh.querySelector("button.actions-toggle"));
  if (focused) fresh.querySelector(`[data-focus-key="${CSS.escape(focused)}"]`)?.focus();
}

/** Whether I have reacted with emoji to message seq. */
function hasReacted(room, seq, emoji) {
  const reactions = room.messages.get(seq)?.revision?.reactions || [];
  return reactions.some((each) => each.emoji === emoji && each.users.includes(room.session.myName));
}

/** A message's living parts: the quote of the one it answers, its text or tombstone,
 * the edited mark, its reactions and its actions. */
function drawMessage(room, item, entry) {
  const session = room.session;
  const me = session.myName;
  const mine = item.user === me;
  const revision = item.revision;
  const sender = visible(session.shownName(item.user));
  entry.append(span("user", sender));
  const body = document.createElement("div");
  body.className = "body";
  if (item.replyTo) {
    entry.dataset.replyTo = String(item.replyTo);
    const quote = quoteOf(item.replyTo, room.messages.get(item.replyTo));
    const quoted = document.createElement("span");
    quoted.className = "quote";
    const who = quote.who ? `${visible(session.shownName(quote.who))} ` : "";
    quoted.textContent = `↳ ${who}#${quote.seq}: ${visible(quote.text)}`;
    if (quote.missing) quoted.classList.add("missing");
    body.append(quoted);
  }
  if (revision?.deleted) {
    entry.classList.add("deleted");
    const by = revision.deletedBy ? { ...revision, deletedBy: visible(session.shownName(revision.deletedBy)) } : revision;
    body.append(span("text tombstone", tombstone(by)));
    entry.append(body);
    return;
  }
  body.append(text(item.text, mine ? "" : me));
  if (revision?.editedMs) {
    const edited = span("edited", "(edited)");
    edited.title = `edited ${new Date(revision.editedMs).toLocaleString()}`;
    body.append(edited);
  }
  const reactions = reactionsShown(revision?.reactions, me, (name) => visible(session.shownName(name)));
  if (reactions.length) {
    const row = document.createElement("div");
    row.className = "reactions";
    for (const each of reactions) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "reaction";
      button.textContent = `${each.emoji} ${each.count}`;
      button.title = each.label;
      button.setAttribute("aria-label", each.label);
      button.setAttribute("aria-pressed", String(each.mine));
      button.dataset.emoji = each.emoji;
      button.dataset.focusKey = `reaction:${each.emoji}`;
      button.addEventListener("click", () => react(room, item.seq, each.emoji));
      row.append(button);
    }
    body.append(row);
  }
  entry.append(body, actionsOf(room, item));
}

/** Add my reaction to message seq, or take it back when I have it. */
function react(room, seq, emoji) {
  const remove = hasReacted(room, seq, emoji);
  const frame = { react: { seq, emoji, remove } };
  apply(room, room.session.change(frame, `/react ${seq} ${emoji}`, now(), false));
}

/** A message's ⋯ button and the actions it opens: reply; react (common emoji, or any
 * one typed); for an account, edit its own and delete its own (an operator: anyone's). */
function actionsOf(room, item) {
  const session = room.session;
  const seq = item.seq;
  const shown = visible(session.shownName(item.user));
  const wrap = document.createElement("div");
  wrap.className = "message-actions";
  const toggle = document.createElement("button");
  toggle.type = "button";
  toggle.className = "actions-toggle";
  toggle.textContent = "⋯";
  toggle.dataset.focusKey = "actions";
  // One ⋯ button of a log is in the tab order (rove); arrows move between them.
  toggle.tabIndex = -1;
  toggle.setAttribute("aria-label", `Actions for ${shown}'s message #${seq}`);
  toggle.setAttribute("aria-expanded", "false");
  const menu = document.createElement("div");
  menu.className = "actions";
  menu.id = `actions-${room.key.replace(/[^\w-]/g, "_")}-${seq}`;
  menu.setAttribute("role", "group");
  menu.setAttribute("aria-label", `Actions for #${seq}`);
  menu.hidden = true;
  toggle.setAttribute("aria-controls", menu.id);
  const close = (focus = true) => {
    menu.hidden = true;
    toggle.setAttribute("aria-expanded", "false");
    if (focus) toggle.focus();
  };
  const choice = (label, action, run) => {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = label;
    button.dataset.action = action;
    button.dataset.focusKey = action;
    button.addEventListener("click", run);
    menu.append(button);
    return button;
  };
  choice("Reply", "reply", () => {
    close(false);
    compose(room, "reply", seq);
  });
  const account = Boolean(session.account);
  const mine = item.user === session.myName;
  if (account) {
    const picker = document.createElement("div");
    picker.className = "picker";
    picker.setAttribute("role", "group");
    picker.setAttribute("aria-label", `React to #${seq}`);
    picker.hidden = true;
    const pick = choice("React", "react", () => {
      picker.hidden = !picker.hidden;
      pick.setAttribute("aria-expanded", String(!picker.hidden));
      if (!picker.hidden) picker.querySelector("button")?.focus();
    });
    pick.setAttribute("aria-expanded", "false");
    for (const emoji of COMMON_EMOJI) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "emoji";
      button.textContent = emoji;
      button.dataset.emoji = emoji;
      button.setAttribute("aria-label", `React with ${emoji}`);
      button.addEventListener("click", () => {
        close();
        react(room, seq, emoji);
      });
      picker.append(button);
    }
    const form = document.createElement("form");
    const field = document.createElement("input");
    field.className = "any-emoji";
    field.maxLength = 32;
    field.placeholder = "any emoji";
    field.setAttribute("aria-label", `Any one emoji to react to #${seq} with`);
    const add = document.createElement("button");
    add.type = "submit";
    add.textContent = "React";
    form.append(field, add);
    form.addEventListener("submit", (submitted) => {
      submitted.preventDefault();
      const emoji = field.value.trim();
      if (!emoji) return;
      close();
      react(room, seq, emoji);
    });
    picker.append(form);
    if (mine) choice("Edit", "edit", () => {
      close(false);
      compose(room, "edit", seq);
    });
    if (mine || session.moderator) choice("Delete", "delete", () => {
      close();
      apply(room, session.change({ delete: { seq } }, `/delete ${seq}`, now(), false));
    });
    menu.append(picker);
  }
  toggle.addEventListener("click", () => {
    const opening = menu.hidden;
    for (const other of room.log.querySelectorAll(".actions:not([hidden])")) {
      other.hidden = true;
      other.previousElementSibling?.setAttribute("aria-expanded", "false");
    }
    menu.hidden = !opening;
    toggle.setAttribute("aria-expanded", String(opening));
    if (opening) menu.querySelector("button")?.focus();
  });
  wrap.addEventListener("keydown", (key) => {
    if (key.key === "Escape" && !menu.hidden) {
      key.stopPropagation();
      close();
    }
  });
  wrap.append(toggle, menu);
  return wrap;
}

/** Who else is typing in the room in front, under its log, until their time is up. */
function renderTyping() {
  const room = state.active;
  const said = room ? room.typing.sentence(now(), (name) => visible(room.session.shownName(name))) : "";
  if (ui.typing.textContent !== said) ui.typing.textContent = said;
  for (const each of state.rooms.values()) clearTimeout(each.typingTimer);
  const at = room?.typing.deadline();
  if (room && at !== null && at !== undefined) {
    room.typingTimer = setTimeout(renderTyping, Math.max(0, (at - now()) * 1000) + 50);
  }
}

/** "replying to bob #12" or "editing #12" over the box, with a way to cancel. */
function renderComposing() {
  const room = state.active;
  const composing = room?.composing;
  ui.composing.hidden = !composing;
  ui.line.placeholder = "Message (Shift+Enter for a new line; /help for commands)";
  if (!composing) return;
  const answered = room.messages.get(composing.seq);
  const who = answered ? `${visible(room.session.shownName(answered.user))} ` : "";
  ui.composingWhat.textContent =
    composing.mode === "reply" ? `replying to ${who}#${composing.seq}` : `editing #${composing.seq}`;
  ui.cancelComposing.setAttribute(
    "aria-label",
    composing.mode === "reply" ? "Cancel the reply" : "Cancel the edit",
  );
}

/** One line of the log for an item (live, history, or a page of older history);
 * `again`: a message drawn again after a change (not heard anew). */
function draw(room, item, again = false) {
  const session = room.session;
  const entry = line(item.kind, "");
  if (item.history) entry.classList.add("history");
  if (item.seq && item.kind !== "gap") entry.dataset.seq = String(item.seq);
  if (item.timeMs) {
    const time = document.createElement("time");
    const when = new Date(item.timeMs);
    time.dateTime = when.toISOString();
    time.textContent = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    time.title = when.toLocaleString();
    entry.append(time);
  }
  const me = session.myName;
  if (item.kind === "message") {
    entry.dataset.user = item.user;
    const mine = item.user === me;
    const named = !mine && mentions(item.text, me);
    if (mine) entry.classList.add("mine");
    if (named) entry.classList.add("mention");
    if (item.action) entry.classList.add("action");
    drawMessage(room, item, entry);
    const sender = visible(session.shownName(item.user));
    if (!item.history && !mine && !again) heard(room, item, sender, named);
  } else if (item.kind === "join" || item.kind === "leave") {
    entry.dataset.user = item.user;
    const what = item.kind === "join" ? " joined" : " left";
    entry.append(span("user", visible(session.shownName(item.user))), what);
  } else if (item.kind === "moderation") {
    // "* bob was banned by alice for 1h: spam", in its place among the messages.
    if (item.moderation?.action) entry.dataset.action = item.moderation.action;
    entry.append(span("text", `* ${visible(item.text)}`));
    if (!item.history && room === state.active) announce(`* ${visible(item.text)}`);
  } else {
    entry.append(span("text", visible(item.text)));
    if (item.kind === "error" && room === state.active) announce(visible(item.text));
  }
  return entry;
}

/** A page of older messages, drawn above the oldest shown (after the "earlier
 * messages" divider), the line being read staying where it is on the screen. */
function older(room, items, moreBefore) {
  const log = room.log;
  const fresh = items.filter((item) => !(item.seq && item.kind !== "gap" && shownSeq(room, item.seq)));
  const oldest = oldestShown(room);
  const newest = Math.max(0, ...fresh.filter((item) => item.kind !== "gap").map((item) => item.seq));
  const lines = [];
  let day = null;
  for (const item of fresh) if (item.kind === "message" && item.seq) keep(room, item);
  // History gives messages as they are now: its changes only redraw what is shown.
  for (const item of items) if (item.revision && item.target) revise(room, { ...item, history: true });
  if (!moreBefore) lines.push(line("divider", "the beginning of this conversation"));
  if (!moreBefore && !room.session.dm) lines[0].textContent = "the beginning of this room";
  for (const item of fresh) {
    if (item.target) continue;
    if (item.timeMs && dayOf(item.timeMs) !== day) {
      day = dayOf(item.timeMs);
      lines.push(dayLine(item.timeMs));
    }
    lines.push(draw(room, item));
  }
  if (oldest && newest && newest < oldest - 1) {
    // Around a search result, far back: what lies between is not on the page.
    const skipped = line("divider", `messages ${newest + 1} to ${oldest - 1} are not shown here`);
    lines.push(skipped);
  }
  room.moreBefore = moreBefore;
  // Older pages go under the "earlier messages" divider (after the line that said who
  // joined), or at the top.
  const after = log.querySelector("li.earlier")?.nextElementSibling ?? log.firstElementChild;
  const fromBottom = log.scrollHeight - log.scrollTop;
  for (const each of lines) log.insertBefore(each, after);
  dropRepeatedDays(log);
  rove(room);
  log.scrollTop = log.scrollHeight - fromBottom;
  if (room.jumpTo) jump(room, room.jumpAsked);
}

function dayLine(timeMs) {
  const entry = line("day", dayLabel(timeMs));
  entry.dataset.day = dayOf(timeMs);
  return entry;
}

/** A date separator that repeats the day above it goes (pages drawn above others). */
function dropRepeatedDays(log) {
  let day = null;
  for (const entry of [...log.children]) {
    if (!entry.dataset.day) continue;
    if (entry.dataset.day === day) entry.remove();
    day = entry.dataset.day;
  }
}

function shownSeq(room, seq) {
  return room.log.querySelector(`li[data-seq="${seq}"]:not(.gap)`);
}

/** The number of the oldest message shown, or 0. */
function oldestShown(room) {
  const first = room.log.querySelector("li.message[data-seq], li.moderation[data-seq]");
  return first ? Number(first.dataset.seq) : 0;
}

/** Near the top of a log after a scroll up: ask for the page before its oldest
 * message. Only upward scrolls count: the page's own scrolls to the newest line go
 * down, and one that lands near the top while the log first overflows is not a
 * person asking for more. */
function scrolled(room) {
  if (room === state.active) markSeen(room);
  const top = room.log.scrollTop;
  const up = top < room.lastScrollTop;
  room.lastScrollTop = top;
  if (!up || top > NEAR_TOP || !room.moreBefore) return;
  const before = oldestShown(room) || (room.session.lastSeq || 0) + 1;
  if (before <= 1) {
    room.moreBefore = false;
    return;
  }
  transmit(room, room.session.askHistory({ before, limit: OLDER_PAGE }));
}

/** Show a search result's message in its room: scrolled to and marked; the page
 * around it asked for when it is not in the log (`answered`: that page came). */
function jump(room, answered = false) {
  const seq = room.jumpTo;
  const found = shownSeq(room, seq);
  if (found) {
    room.jumpTo = 0;
    room.jumpAsked = false;
    for (const old of room.log.querySelectorAll("li.found")) old.classList.remove("found");
    found.classList.add("found");
    found.tabIndex = -1;
    found.scrollIntoView({ block: "center" });
    found.focus();
    return;
  }
  if (answered) {
    room.jumpTo = 0; // answered, and not there (no longer kept): the gap says so
    room.jumpAsked = false;
    return;
  }
  if (room.session.phase !== "joined" || room.session.historyAsked) return;
  room.jumpAsked = Boolean(transmit(room, room.session.askHistory({ around: seq, limit: OLDER_PAGE })));
}

function append(room, entry) {
  const log = room.log;
  const atBottom = log.hidden || log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  log.append(entry);
  while (log.childElementCount > MAX_LINES) log.firstElementChild.remove();
  if (atBottom) log.scrollTop = log.scrollHeight;
  rove(room);
}

/** Keep one ⋯ button of the log in the tab order: the one the person moved to (while
 * the focus is in the log), else the newest message's. */
function rove(room, to = null) {
  const toggles = [...room.log.querySelectorAll("button.actions-toggle")];
  const inLog = room.log.contains(document.activeElement) && document.activeElement !== room.log;
  const current = to ?? (inLog ? toggles.find((each) => each.tabIndex === 0) : null) ?? toggles.at(-1);
  for (const each of toggles) each.tabIndex = each === current ? 0 : -1;
}

/** Up and Down on a message's ⋯ button move to the one before or after it. */
function moveAmongActions(room, key) {
  if (!key.target.classList?.contains("actions-toggle")) return;
  if (key.key !== "ArrowUp" && key.key !== "ArrowDown") return;
  const toggles = [...room.log.querySelectorAll("button.actions-toggle")];
  const next = toggles[toggles.indexOf(key.target) + (key.key === "ArrowUp" ? -1 : 1)];
  if (!next) return;
  key.preventDefault();
  rove(room, next);
  next.focus();
}

/** A message's text: links (http and https only) clickable, my name marked. */
function text(body, me) {
  const part = document.createElement("span");
  part.className = "text";
  for (const piece of pieces(body, me)) {
    if (piece.kind === "link") {
      const link = document.createElement("a");
      link.href = piece.href;
      link.rel = "noopener noreferrer";
      link.target = "_blank";
      link.textContent = piece.text;
      part.append(link);
    } else if (piece.kind === "mention") {
      const mark = document.createElement("mark");
      mark.textContent = piece.text;
      part.append(mark);
    } else {
      part.append(piece.text);
    }
  }
  return part;
}

function line(kind, words) {
  const entry = document.createElement("li");
  entry.className = `line ${kind}`;
  entry.dataset.kind = kind;
  if (words) entry.textContent = words;
  return entry;
}

function span(kind, words) {
  const part = document.createElement("span");
  part.className = kind;
  part.textContent = words;
  return part;
}

/** "reconnecting in 4 s", kept current by a re-render each second while away. */
function countdown(room) {
  clearTimeout(room.countdown);
  const left = Math.max(0, Math.ceil(room.session.reconnectAt - now()));
  if (left > 0) room.countdown = setTimeout(render, 1000);
  return left > 0 ? `reconnecting in ${left} s` : "reconnecting…";
}

function render() {
  const room = state.active;
  if (!room) return;
  const session = room.session;
  ui.roomTitle.textContent = visible(room.name);
  ui.topic.textContent = session.topic ? visible(session.topic) : "";
  ui.topic.hidden = !session.topic;
  let status;
  if (session.phase === "joined") {
    status = `connected as ${visible(session.shownName(session.myName))}`;
  } else if (session.phase === "joining" || room.socket) {
    status = "connecting…";
  } else {
    status = session.trouble ? `${session.trouble}; ${countdown(room)}` : "connecting…";
  }
  if (session.undelivered) status += ` · ${session.undelivered} waiting to be sent`;
  ui.status.textContent = status;
  ui.status.dataset.phase = session.phase;
  const names = [...session.members].sort();
  ui.memberCount.textContent = String(names.length);
  renderMembers(room, names);
  renderPending(session);
  renderTyping();
  renderComposing();
  renderRooms();
  renderConversations();
  ui.notify.hidden = !("Notification" in window) || Notification.permission !== "default";
  document.title = `${unreadInAll() ? `(${unreadInAll()}) ` : ""}${visible(room.name)} — purechat`;
}

/** What is unread in the open rooms and every conversation. */
function unreadInAll() {
  const rooms = new Set(state.unread.conversations().map((each) => each.room));
  for (const room of state.rooms.values()) if (room.serverRoom) rooms.add(room.serverRoom);
  return [...rooms].reduce((sum, each) => sum + state.unread.of(each).unread, 0);
}

/** Who is here: names, each with a menu: "Message NAME" for an account, and kick, mute,
 * ban, op... for a moderator. Drawn again only when what it shows changes, so an open
 * menu and the focus stay. */
function renderMembers(room, names) {
  const session = room.session;
  const writes = Boolean(state.account) && !session.dm;
  const drawn = JSON.stringify([room.key, session.role, session.myName, names, writes]);
  if (drawn === state.membersDrawn) return;
  const focused = ui.members.contains(document.activeElement)
    ? document.activeElement.dataset.focusKey
    : null;
  state.membersDrawn = drawn;
  ui.members.replaceChildren(
    ...names.map((name, n) => {
      const entry = document.createElement("li");
      const shown = visible(session.shownName(name));
      if (name === session.myName || !(session.moderator || writes)) {
        entry.textContent = shown;
        if (name === session.myName) entry.classList.add("me");
        return entry;
      }
      const menuId = `member-menu-${n}`;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "member";
      button.textContent = shown;
      button.dataset.user = name;
      button.dataset.focusKey = `member:${name}`;
      button.setAttribute("aria-expanded", String(state.menuOpen === name));
      button.setAttribute("aria-controls", menuId);
      const menu = document.createElement("div");
      menu.id = menuId;
      menu.className = "member-menu";
      menu.setAttribute("role", "group");
      menu.setAttribute("aria-label", `${session.moderator ? "Moderate or write to" : "Write to"} ${shown}`);
      menu.hidden = state.menuOpen !== name;
      if (writes) {
        const write = document.createElement("button");
        write.type = "button";
        write.textContent = `Message ${shown}`;
        write.dataset.action = "message";
        write.dataset.focusKey = `message:${name}`;
        write.addEventListener("click", () => {
          state.menuOpen = "";
          state.membersDrawn = "";
          openConversation(name);
          ui.line.focus();
        });
        menu.append(write);
      }
      const owner = session.role === "owner" || session.role === "admin";
      for (const [label, action, seconds, ownerOnly] of MENU) {
        if (!session.moderator) break;
        if (ownerOnly && !owner) continue;
        const choice = document.createElement("button");
        choice.type = "button";
        choice.textContent = label;
        choice.dataset.action = action;
        choice.dataset.focusKey = `${action}:${seconds}:${name}`;
        choice.addEventListener("click", () => {
          state.menuOpen = "";
          const fields = moderation(action, { target: name, seconds });
          const said = `/${action} ${name}${seconds ? ` ${formatDuration(seconds)}` : ""}`;
          apply(room, room.session.moderate(fields, said, now(), false));
          state.membersDrawn = "";
          render();
          ui.members.querySelector(`[data-focus-key="member:${CSS.escape(name)}"]`)?.focus();
        });
        menu.append(choice);
      }
      button.addEventListener("click", () => {
        state.menuOpen = state.menuOpen === name ? "" : name;
        state.membersDrawn = "";
        render();
        const back = `[data-focus-key="member:${CSS.escape(name)}"]`;
        ui.members.querySelector(state.menuOpen ? `#${menuId} button` : back)?.focus();
      });
      entry.append(button, menu);
      return entry;
    }),
  );
  if (focused) ui.members.querySelector(`[data-focus-key="${CSS.escape(focused)}"]`)?.focus();
}

// Escape closes a member's menu, back on its name.
ui.members.addEventListener("keydown", (key) => {
  if (key.key !== "Escape" || !state.menuOpen) return;
  const name = state.menuOpen;
  state.menuOpen = "";
  state.membersDrawn = "";
  render();
  ui.members.querySelector(`[data-focus-key="member:${CSS.escape(name)}"]`)?.focus();
});

function renderPending(session) {
  const lines = [...session.pending.values()];
  const shown = lines.slice(0, PENDING_SHOWN).map((pending) => {
    const entry = document.createElement("li");
    entry.textContent = `sending… ${visible(pending.action ? `/me ${pending.text}` : pending.text)}`;
    return entry;
  });
  if (lines.length > PENDING_SHOWN) {
    const more = document.createElement("li");
    more.textContent = `… and ${lines.length - PENDING_SHOWN} more`;
    shown.push(more);
  }
  ui.pending.replaceChildren(...shown);
  ui.pending.hidden = shown.length === 0;
}

/** Each room's button: its name, its unread count, a mark when someone named me. */
function renderRooms() {
  for (const room of state.rooms.values()) {
    if (room.session.dm) continue;
    const { unread, mentions: named } = state.unread.of(room.serverRoom);
    label(room.button, visible(room.name), unread, named > 0);
    if (room === state.active) room.button.setAttribute("aria-current", "true");
    else room.button.removeAttribute("aria-current");
  }
}

/** A button's words: a name, the unread count and the mention mark (said in words too). */
function label(button, name, unread, mentioned) {
  const parts = [span("room-name", name)];
  if (unread) {
    const count = span("unread", String(unread));
    count.append(span("visually-hidden", " unread"));
    parts.push(count);
  }
  if (mentioned) {
    const mark = span("mentioned", "@");
    mark.append(span("visually-hidden", " you were mentioned"));
    parts.push(mark);
  }
  button.replaceChildren(...parts);
  button.dataset.unread = String(unread);
  button.dataset.mentioned = String(mentioned);
}

/** The conversations: the server's list and those open here, each a button with the
 * other account's name and what is unread; a guest is told why there are none. */
function renderConversations() {
  const guest = state.account === "";
  ui.noConversations.hidden = !guest;
  ui.dmForm.hidden = !state.account;
  const open = [...state.rooms.values()].filter((room) => room.session.dm);
  const entries = [];
  const drawn = new Set();
  for (const known of state.unread.conversations()) {
    const room = open.find((each) => each.serverRoom === known.room);
    entries.push({ peer: known.peer, room, unread: known.unread, mentions: known.mentions });
    drawn.add(known.peer.toLowerCase());
  }
  for (const room of open) {
    const peer = room.session.peer || room.session.dm;
    if (!drawn.has(peer.toLowerCase())) entries.push({ peer, room, unread: 0, mentions: 0 });
  }
  entries.sort((a, b) => a.peer.localeCompare(b.peer));
  const items = entries.map((entry) => {
    // An open conversation keeps its own button (the focus stays on it as it changes).
    const button = entry.room ? entry.room.button : conversationButton(entry.peer);
    label(button, visible(entry.peer), entry.unread, entry.mentions > 0);
    button.dataset.dm = entry.peer;
    if (entry.room && entry.room === state.active) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
    if (entry.room) return entry.room.entry;
    const item = document.createElement("li");
    item.append(button);
    return item;
  });
  const focused = ui.conversations.contains(document.activeElement)
    ? document.activeElement.dataset.dm
    : null;
  ui.conversations.replaceChildren(...items);
  if (focused && !ui.conversations.contains(document.activeElement)) {
    ui.conversations.querySelector(`button[data-dm="${CSS.escape(focused)}"]`)?.focus();
  }
}

function conversationButton(peer) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "room";
  button.addEventListener("click", () => {
    openConversation(peer);
    ui.line.focus();
  });
  return button;
}

// -- what others said: unread counts, the live region, notifications ---------------------

function looking() {
  return !document.hidden && document.hasFocus();
}

function heard(room, item, sender, named) {
  const active = room === state.active;
  const said = item.action ? `${sender} ${visible(item.text)}` : `${sender}: ${visible(item.text)}`;
  if (active) announce(said);
  else if (named) announce(`${sender} mentioned you in ${visible(room.name)}`);
  if (named && document.hidden) notify(room, sender, item);
}

/** Someone wrote to this account in a conversation not open on this socket: the list's
 * counts asked for again, the news said (and notified, when the tab is hidden). Other
 * open rooms of this tab hear it too: said once, by the conversation's own socket if
 * the tab has it open (then it is no news). */
function wroteToMe({ room, peer, seq, text }) {
  if ([...state.rooms.values()].some((open) => open.session.room === room)) return;
  if (state.lastNotice === `${room}#${seq}`) return;
  state.lastNotice = `${room}#${seq}`;
  askConversations();
  announce(`${visible(peer)} wrote to you`);
  if (document.hidden) raise(`${visible(peer)} wrote to you`, text, room, () => {});
}

function announce(words) {
  const entry = document.createElement("p");
  entry.textContent = words;
  ui.announcer.append(entry);
  while (ui.announcer.childElementCount > ANNOUNCED) ui.announcer.firstElementChild.remove();
}

function notify(room, sender, item) {
  raise(`${sender} in ${visible(room.name)}`, item.text, room.name, () => {
    if (state.rooms.get(room.key) === room) activate(room);
  });
}

/** A desktop notification, where the person allowed them: one per room (`tag`), its
 * text shortened; a click brings the tab forward, then does `clicked`. */
function raise(title, text, tag, clicked) {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  const body = visible(text);
  const shown = new Notification(title, {
    body: body.length > 200 ? `${body.slice(0, 199)}…` : body,
    tag: `purechat-${tag}`,
  });
  shown.addEventListener("click", () => {
    window.focus();
    clicked();
  });
}

// Permission is asked for only when the person clicks, never on load.
ui.notify.addEventListener("click", async () => {
  if (!("Notification" in window)) return;
  await Notification.requestPermission();
  render();
  ui.line.focus();
});

/** Mark read what the person can see in the room in front: the newest message in the
 * log's view, while the tab is visible and focused (a guest's page marks it here only). */
function markSeen(room) {
  if (room !== state.active || !room.opened || room.log.hidden) return;
  const view = room.log.getBoundingClientRect();
  const shown = [...room.log.querySelectorAll("li.message[data-seq], li.moderation[data-seq]")];
  const boxes = shown.map((entry) => {
    const box = entry.getBoundingClientRect();
    return { seq: Number(entry.dataset.seq), top: box.top, bottom: box.bottom };
  });
  const { readSeq } = state.unread.of(room.serverRoom);
  const seq = toMark({
    looking: looking(),
    seen: newestInView(boxes, view.top, view.bottom),
    readSeq,
    asked: 0,
  });
  if (!seq) return;
  state.unread.read(room.serverRoom, seq);
  transmit(room, room.session.markRead(seq));
  render();
}

/** Back to the tab: mark what is in view, and ask what came in the conversations. */
function seen() {
  if (!looking()) return;
  if (state.active) markSeen(state.active);
  askConversations();
}

document.addEventListener("visibilitychange", seen);
window.addEventListener("focus", seen);

// -- conversations and search --------------------------------------------------------------

ui.dmForm.addEventListener("submit", (submitted) => {
  submitted.preventDefault();
  const name = ui.dmName.value.trim();
  const problem = conversationProblem(name);
  if (problem) {
    problemAtSend(problem, ui.dmName);
    return;
  }
  ui.dmName.value = "";
  ui.dmName.removeAttribute("aria-invalid");
  ui.sendProblem.textContent = "";
  openConversation(name);
  ui.line.focus();
});

ui.searchForm.addEventListener("submit", (submitted) => {
  submitted.preventDefault();
  search(ui.searchText.value.trim());
});

/** Ask for the messages holding these words, across what the account may read. */
function search(words) {
  if (!words) {
    problemAtSend("Type a word to search for.", ui.searchText);
    return;
  }
  ui.searchText.removeAttribute("aria-invalid");
  const room = asker();
  if (!room || !transmit(room, room.session.askSearch(words, "", FOUND_PAGE))) {
    problemAtSend("Not connected: search once it is back.", ui.searchText);
    return;
  }
  ui.sendProblem.textContent = "";
  state.searched = words;
  state.foundNext = "";
  ui.found.replaceChildren();
  ui.searchHeading.textContent = `Searching for “${visible(words)}”…`;
  ui.searchView.hidden = false;
  ui.moreFound.hidden = true;
}

ui.moreFound.addEventListener("click", () => {
  const room = asker();
  if (room && state.foundNext) transmit(room, room.session.askSearch(state.searched, state.foundNext, FOUND_PAGE));
  ui.moreFound.hidden = true;
});

ui.closeSearch.addEventListener("click", () => {
  ui.searchView.hidden = true;
  ui.searchText.focus();
});

ui.searchView.addEventListener("keydown", (key) => {
  if (key.key === "Escape") ui.closeSearch.click();
});

/** Search results, newest first: where, number, time, who, and the text with the
 * matched words marked (as <mark>, the text put in as text). */
function showFound(room, found, next) {
  if (ui.searchView.hidden) return;
  const firstPage = ui.found.childElementCount === 0;
  for (const { item, marks, peer } of found) {
    const entry = document.createElement("li");
    const choice = document.createElement("button");
    choice.type = "button";
    choice.className = "result";
    choice.dataset.room = item.room;
    choice.dataset.seq = String(item.seq);
    const where = span("place", `${placeName(item.room, peer)} #${item.seq}`);
    const parts = [where];
    if (item.timeMs) {
      const time = document.createElement("time");
      const when = new Date(item.timeMs);
      time.dateTime = when.toISOString();
      time.textContent = when.toLocaleString([], { dateStyle: "short", timeStyle: "short" });
      parts.push(time);
    }
    parts.push(span("user", visible(room.session.shownName(item.user))));
    const said = document.createElement("span");
    said.className = "text";
    for (const piece of markedPieces(item.text, marks)) {
      if (piece.kind === "match") {
        const mark = document.createElement("mark");
        mark.textContent = piece.text;
        said.append(mark);
      } else {
        said.append(piece.text);
      }
    }
    parts.push(said);
    choice.append(...parts);
    choice.addEventListener("click", () => {
      const target = peer ? openConversation(peer) : openRoom(item.room);
      if (!target) return;
      target.jumpTo = item.seq;
      target.jumpAsked = false;
      if (target.session.phase === "joined") jump(target);
    });
    entry.append(choice);
    ui.found.append(entry);
  }
  const count = ui.found.childElementCount;
  const words = `“${visible(state.searched)}”`;
  ui.searchHeading.textContent = count
    ? `${count}${next ? "+" : ""} found for ${words}`
    : `Nothing found for ${words}`;
  state.foundNext = next;
  ui.moreFound.hidden = !next;
  if (firstPage) (ui.found.querySelector("button") || ui.closeSearch).focus();
}

// A refused line's mark goes once the box holds what the server would take.
ui.line.addEventListener("input", () => {
  const limit = state.active?.session.maxTextBytes;
  if (limit && ui.line.getAttribute("aria-invalid") && utf8Length(ui.line.value) <= limit) {
    ui.line.removeAttribute("aria-invalid");
    ui.sendProblem.textContent = "";
  }
});

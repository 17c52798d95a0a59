// Living messages on the page, without a DOM: the commands as typed (/reply, /edit,
// /delete, /react), what a message is after an edit, delete or reaction event, the
// short quote a reply shows, reactions as counted and said, and who is shown typing.
// node tests this file alone (tests/web/living.test.mjs); whether a change may be done
// is the server's to decide, and it says why not in a sentence.

import { CommandUsage } from "./moderation.mjs";

// How a change or reply is typed, for /help and usage sentences.
export const LIVING_USAGE = {
  reply: ["/reply N TEXT", "answer message #N"],
  edit: ["/edit [N] TEXT", "change your message #N (your last without N)"],
  delete: ["/delete N", "delete your message #N (an operator's: anyone's)"],
  react: ["/react N EMOJI", "react to message #N (again to take it back)"],
};
// The reactions the picker offers before its field for any one emoji.
export const COMMON_EMOJI = ["👍", "❤️", "😂", "🎉", "😮", "👀"];
// Seconds another member is shown typing at most (core/living.py's TYPING_SHOWN_SECONDS).
export const TYPING_SHOWN = 6;
// Characters of the answered message a reply's quote shows.
const QUOTED = 60;

function usage(word) {
  return new CommandUsage(`Usage: ${LIVING_USAGE[word][0]}.`);
}

function number(text) {
  const found = /^#?(\d+)$/.exec(text || "");
  return found ? Number(found[1]) : 0;
}

/** A living command as typed: {reply: {seq, text}} for /reply, else {change: frame}
 * (the session's change frame). `argument` is what follows the word; `lastMine` is the
 * number of this member's last message shown (0: none), for `/edit TEXT`; `mine(seq)`
 * whether a shown message is this member's reaction (a second /react takes it back).
 * CommandUsage with a sentence for a shape it does not take. */
export function livingCommand(word, argument, { lastMine = 0, reacted = () => false } = {}) {
  const text = argument.trim();
  const [first, ...rest] = text.split(" ");
  const seq = number(first);
  const after = rest.join(" ").trim();
  if (word === "reply") {
    if (!seq || !after) throw usage(word);
    return { reply: { seq, text: after } };
  }
  if (word === "edit") {
    if (seq && after) return { change: { edit: { seq, text: after } } };
    if (!text) throw usage(word);
    if (!lastMine) throw new CommandUsage("You have no message here to edit: use /edit N TEXT.");
    return { change: { edit: { seq: lastMine, text } } };
  }
  if (word === "delete") {
    if (!seq || after) throw usage(word);
    return { change: { delete: { seq } } };
  }
  if (word === "react") {
    if (!seq || !after) throw usage(word);
    return { change: { react: { seq, emoji: after, remove: reacted(seq, after) } } };
  }
  throw new CommandUsage(`Unknown command /${word}.`);
}

/** A message item after a change item (edit, delete, reaction) of it: the change
 * carries the message's whole revision after it, so applying it twice, or late, shows
 * the same. */
export function revised(message, change) {
  const next = { ...message, revision: change.revision };
  if (change.kind === "edit") next.text = change.text;
  if (change.revision?.deleted) next.text = "";
  return next;
}

/** What a deleted message shows in its place. */
export function tombstone(revision) {
  return revision.deletedBy ? `message deleted by ${revision.deletedBy}` : "message deleted";
}

/** The first line of a text, cut to `most` characters with an ellipsis. */
export function shortened(text, most = QUOTED) {
  const first = String(text).split("\n", 1)[0];
  const chars = [...first];
  const cut = chars.length > most ? `${chars.slice(0, most - 1).join("")}…` : first;
  return cut + (text.includes("\n") && chars.length <= most ? " …" : "");
}

/** A reply's quote of the message it answers, from what the page holds (null: not
 * shown here): {who, seq, text}. */
export function quoteOf(seq, answered) {
  if (!answered) return { who: "", seq, text: "(not shown here)", missing: true };
  const text = answered.revision?.deleted ? tombstone(answered.revision) : shortened(answered.text);
  return { who: answered.user, seq, text, missing: false };
}

/** Names as a sentence: "alice", "alice and bob", "alice, bob and carol". */
export function together(names) {
  if (names.length <= 1) return names.join("");
  return `${names.slice(0, -1).join(", ")} and ${names.at(-1)}`;
}

/** The reactions under a message: [{emoji, count, mine, label}], `label` saying who
 * (for a title and an accessible name). `shown(name)` is how a name is shown. */
export function reactionsShown(reactions, me, shown = (name) => name) {
  return (reactions || [])
    .filter((each) => each.users.length)
    .map((each) => {
      const mine = each.users.includes(me);
      const names = each.users.map((user) => (user === me ? "you" : shown(user)));
      const count = each.users.length;
      const label = `${each.emoji} ${count}: ${together(names)}${mine ? " (press to take yours back)" : ""}`;
      return { emoji: each.emoji, count, mine, label };
    });
}

/** Who else is shown typing in one room: each for at most TYPING_SHOWN seconds after
 * the server last said so, or until that member's next message. */
export class TypingShown {
  constructor() {
    // name -> the time it stops being shown.
    this.until = new Map();
    this.more = 0;
  }

  /** The server said these are typing (and `more` beyond them). */
  heard(users, more, now) {
    for (const user of users) this.until.set(user, now + TYPING_SHOWN);
    this.more = more;
    this.moreUntil = now + TYPING_SHOWN;
  }

  /** That member's message came: it is no longer shown typing. */
  said(user) {
    this.until.delete(user);
  }

  /** Those shown now, in the order first heard. */
  names(now) {
    for (const [user, until] of this.until) if (until <= now) this.until.delete(user);
    return [...this.until.keys()];
  }

  /** "bob is typing…", "bob and carol are typing…", "" for nobody. */
  sentence(now, shown = (name) => name) {
    const names = this.names(now).map(shown);
    const more = this.moreUntil > now ? this.more : 0;
    if (!names.length) return "";
    if (more) names.push(`${more} more`);
    return `${together(names)} ${names.length === 1 ? "is" : "are"} typing…`;
  }

  /** When the sentence next changes by itself (null: it will not). */
  deadline() {
    const ends = [...this.until.values()];
    return ends.length ? Math.min(...ends) : null;
  }
}

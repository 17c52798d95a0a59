// Moderation commands as people type them (`/ban spammer 1h spam`), made into the
// `moderate` frame's fields; a port of purechat/client/moderation.py, so the page and
// `purechat join` take the same commands the same way. Only the shape is checked here
// (a name where one is needed, a duration that is one): whether a command may be done is
// the server's to decide, and it says why not in a sentence. node tests this file alone
// (tests/web/moderation.test.mjs).

// action -> [how it is typed, what it does], for /help and usage sentences.
export const USAGE = {
  claim: ["/claim", "own this room (one without an owner; it takes an account)"],
  kick: ["/kick NAME [REASON]", "put a member out of the room (it may come back)"],
  ban: ["/ban NAME [DURATION] [REASON]", "put out and keep out (e.g. /ban bob 1h spam)"],
  unban: ["/unban NAME", "lift a ban"],
  mute: ["/mute NAME [DURATION] [REASON]", "the member reads on; its messages are refused"],
  unmute: ["/unmute NAME", "lift a mute"],
  op: ["/op NAME", "make an account an operator of this room (the owner only)"],
  deop: ["/deop NAME", "an operator no more (the owner only)"],
  topic: ["/topic [TEXT]", "show the topic, or set it (/topic - clears it)"],
  mode: ["/mode invite-only|open", "let in only the invited, or everyone"],
  invite: ["/invite NAME", "let an account into an invite-only room"],
};
export const MODES = ["invite-only", "open"];
const NAME_ONLY = new Set(["unban", "unmute", "op", "deop", "invite"]);
const TIMED = new Set(["ban", "mute"]);
const UNITS = { s: 1, m: 60, h: 3600, d: 86400, w: 7 * 86400 };
// The longest ban or mute that is not for good: a year (core/moderation.py's MAX_SECONDS).
export const MAX_SECONDS = 366 * 24 * 3600;

/** A command typed or given in a shape it does not take; `message` is a sentence. */
export class CommandUsage extends Error {}

/** "30m", "2h", "7d" as seconds; CommandUsage with a sentence for one that is not. */
export function parseDuration(text) {
  const found = /^(\d+)([smhdw])$/.exec(text.trim().toLowerCase());
  if (!found) {
    throw new CommandUsage(
      `“${text}” is not a duration: give a number and a unit, like 30s, 10m, 2h, 7d or 1w.`,
    );
  }
  const seconds = Number(found[1]) * UNITS[found[2]];
  if (!(seconds > 0 && seconds <= MAX_SECONDS)) {
    throw new CommandUsage("A duration is from a second to a year, like 30m, 2h or 7d.");
  }
  return seconds;
}

/** A duration as people say it: 45s, 10m, 2h, 3d, 2w (the largest unit that fits). */
export function formatDuration(seconds) {
  const whole = Math.round(seconds);
  for (const [unit, size] of [["w", 604800], ["d", 86400], ["h", 3600], ["m", 60]]) {
    if (whole >= size && whole % size === 0) return `${whole / size}${unit}`;
  }
  if (whole >= 3600) return `${Math.floor(whole / 3600)}h${Math.floor((whole % 3600) / 60)}m`;
  if (whole >= 60) return `${Math.floor(whole / 60)}m`;
  return `${whole}s`;
}

/** The `moderate` frame's fields for action; only the fields it takes are set. */
export function command(action, { target = "", seconds = null, reason = "", text = "" } = {}) {
  const fields = { action };
  if (target) fields.target = target;
  if (seconds !== null) fields.seconds = seconds;
  if (reason) fields.reason = reason;
  if (action === "topic" || action === "mode") fields.text = text;
  return fields;
}

/** A command as typed after its slash (`typed("ban", "spammer 1h spam", members)`):
 * the `moderate` frame's fields; CommandUsage with a sentence when it does not fit.
 * `members` (the names in the room) tell where a name with spaces ends. */
export function typed(action, argument, members = []) {
  const given = argument.trim();
  const usage = `Usage: ${USAGE[action][0]}.`;
  if (action === "claim") {
    if (given) throw new CommandUsage(`${usage} (It takes nothing after it.)`);
    return command("claim");
  }
  if (action === "topic") return command("topic", { text: given === "-" ? "" : given });
  if (action === "mode") {
    if (!MODES.includes(given)) throw new CommandUsage(usage);
    return command("mode", { text: given });
  }
  if (!given) throw new CommandUsage(usage);
  const [name, afterName] = NAME_ONLY.has(action)
    ? [unquoted(given), ""]
    : nameAndRest(given, members);
  if (!name) throw new CommandUsage(usage);
  let rest = afterName;
  let seconds = null;
  if (TIMED.has(action) && rest) {
    const [first, ...after] = rest.split(" ");
    if (/^\d/.test(first)) {
      seconds = parseDuration(first);
      rest = after.join(" ").trim();
    }
  }
  return command(action, { target: name, seconds, reason: rest });
}

function unquoted(text) {
  return text.length >= 2 && text.startsWith('"') && text.endsWith('"')
    ? text.slice(1, -1).trim()
    : text;
}

function nameAndRest(argument, members) {
  if (argument.startsWith('"')) {
    const end = argument.indexOf('"', 1);
    if (end < 0) {
      throw new CommandUsage('A quoted name needs its closing quote: /kick "Mary Ann" REASON.');
    }
    return [argument.slice(1, end).trim(), argument.slice(end + 1).trim()];
  }
  const folded = argument.toLowerCase();
  const spaced = [...members].filter((name) => name.includes(" "));
  spaced.sort((a, b) => b.length - a.length);
  for (const name of spaced) {
    const next = argument.charAt(name.length);
    if (folded.startsWith(name.toLowerCase()) && (next === "" || next === " ")) {
      return [argument.slice(0, name.length), argument.slice(name.length).trim()];
    }
  }
  const space = argument.indexOf(" ");
  if (space < 0) return [argument, ""];
  return [argument.slice(0, space), argument.slice(space + 1).trim()];
}

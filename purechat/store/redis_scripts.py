"""The Redis store's Lua scripts: each touches one slot, and only the keys it is given.

Every script is sent by its SHA (glide's Script: EVALSHA, and SCRIPT LOAD on a node that
does not know it, as after a restart, a failover or a move) and takes the keys it
touches as KEYS, built by redis_keys.py in the orders `RoomKeys.for_append` and
`RoomKeys.for_presence` give; each script's comment says its KEYS and ARGV. The rules
they keep (one slot, no key built in Lua, no key touched again once it may have been
emptied) are redis_keys.py's.

Times that decide liveness (heartbeats, `behind`) are Redis's own (`TIME`), so servers
whose clocks disagree still agree on who is alive.
"""

from __future__ import annotations

from purechat.core.living import MAX_REACTION_KINDS

# Presence entries kept per room: enough for a server whose feed lags a little.
PRESENCE_KEPT = 1000

COMMON = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- The newest number in a log (0 for none): what readers can see of the room.
local function top(log)
  local newest = redis.call('XREVRANGE', log, '+', '-', 'COUNT', 1)
  if #newest == 0 then return 0 end
  return tonumber(string.match(newest[1][1], '^(%d+)'))
end
-- A room's epoch: created with its log (from a fresh candidate the caller passes), and
-- gone with it when Redis loses the data (FLUSHALL, a restart without persistence).
local function epoch_of(epoch_key, candidate)
  local epoch = redis.call('GET', epoch_key)
  if not epoch then
    epoch = candidate
    redis.call('SET', epoch_key, epoch)
  end
  return epoch
end
local function tell(news)
  if news ~= '' then redis.call('SPUBLISH', news, '') end
end
"""

# KEYS: per room of the batch (all in one slot) its seq, log, staged, epoch, writer,
# ids, idq, behind, presence, state and bodies. ARGV: history, ids kept, candidate
# epoch, staged ("1": append to `staged`, not `log`), fence ("1": a promoted node starts
# a new log), this reader's id, the number of rooms, each room's news channel ("" on one
# Redis), then per draft: its room's place among the rooms (from 1), user, text,
# time_ms, action, sender, id, kind, data, effects (JSON, "" for none: a moderation
# entry's changes to its room's state, applied here with its numbering), reply_to,
# target, account.
#
# A message's text goes to the room's `bodies`, not its stream entry; an edit, delete
# or reaction (core/living.py) is applied there to its target here, in the script that
# numbers it (`revise`, living.revise's rule in Lua), and keeps no text of its own.
#
# Returns {0, per room 2 if another server is behind in it (1 if only this one is), then
# per draft its seq (negative for a repeat), its room's epoch and, for a change newly
# numbered, its target as it is now ({id, fields, body}; "" when not kept)}; or {1} when
# a room's log was started again (the caller runs it once more: no key a reset deleted
# is touched after it).
#
# While a server (this one included) is behind in a room its log keeps the newest `ids
# kept` (10,000 or --history) rather than --history: what was sent before the senders
# were held waits in the log for that server, instead of being trimmed unread.
#
# The fence: every write records the replication id of the node that made it. A node
# whose previous replication id (master_replid2) is the room's writer was a replica
# of it and has been promoted since: with asynchronous replication it may lack the
# newest messages the old primary acknowledged, and numbering on would give their
# numbers to others. Such a log is declared lost (a new epoch: members are told) unless
# every message was on a replica before it was acknowledged (`?replicas=N`, fence off).
# A room that moved here by a reshard has an unrelated writer and goes on as it was.
APPEND = (
    COMMON
    + f"local MAX_REACTION_KINDS = {MAX_REACTION_KINDS}\n"
    + """
local history, kept, candidate = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local staged, fence, me = ARGV[4] == '1', ARGV[5] == '1', ARGV[6]
local rooms = tonumber(ARGV[7])
local function room(place)
  local at = 11 * place - 10
  return {seq = KEYS[at], log = KEYS[at + 1], staged = KEYS[at + 2], epoch = KEYS[at + 3],
    writer = KEYS[at + 4], ids = KEYS[at + 5], idq = KEYS[at + 6], behind = KEYS[at + 7],
    presence = KEYS[at + 8], state = KEYS[at + 9], bodies = KEYS[at + 10],
    news = ARGV[7 + place]}
end
local info = redis.call('INFO', 'replication')
local replid = string.match(info, 'master_replid:(%w+)')
local replid2 = string.match(info, 'master_replid2:(%w+)')
local reset = false
for place = 1, rooms do
  local r = room(place)
  local writer = redis.call('GET', r.writer)
  if writer ~= replid then
    if fence and writer and writer == replid2 then
      redis.call('DEL', r.seq, r.log, r.staged, r.epoch, r.ids, r.idq, r.presence,
        r.bodies)
      reset = true
    end
    redis.call('SET', r.writer, replid)
  end
end
if reset then return {1} end
local out = {0}
local now = now_ms()
local keep = {}
for place = 1, rooms do
  local r, others, anyone = room(place), 0, false
  for _, reader in ipairs(redis.call('ZRANGEBYSCORE', r.behind, now, '+inf')) do
    anyone = true
    if reader ~= me then others = 1 end
  end
  table.insert(out, others == 1 and 2 or (anyone and 1 or 0))
  keep[place] = anyone and math.max(kept, tonumber(history)) or history
end
-- Retry ids: a hash to look them up, a list to forget the oldest (filled before it is
-- trimmed, so neither is ever emptied here).
local function remember(r, retry, seq)
  redis.call('HSET', r.ids, retry, seq)
  redis.call('RPUSH', r.idq, seq .. ':' .. retry)
  local extra = redis.call('LLEN', r.idq) - kept
  if extra > 0 then
    for _, old in ipairs(redis.call('LPOP', r.idq, extra)) do
      local old_seq, old_retry = string.match(old, '^(%d+):(.*)$')
      if redis.call('HGET', r.ids, old_retry) == old_seq then
        redis.call('HDEL', r.ids, old_retry)
      end
    end
  end
end
-- Message `target` (a number) as the log (or, staged, the staging stream) has it now:
-- {id, fields, body}, or false when it is no longer kept or is no message.
local function entry_of(r, target)
  local found = redis.call('XRANGE', r.log, target .. '-0', target .. '-0')
  if #found == 0 then found = redis.call('XRANGE', r.staged, target .. '-0', target .. '-0') end
  local body = redis.call('HGET', r.bodies, target)
  if #found == 0 or not body then return false end
  return {found[1][1], found[1][2], body}
end
-- living.revise: the target's body after an edit, delete or reaction of it. A deleted
-- target stays as it is; so does a reaction an account already has (or no longer has),
-- or one kind too many. The earlier text is overwritten, not kept anywhere.
local function revise(r, kind, target, user, text, time, data)
  local found = entry_of(r, target)
  if not found then return '' end
  local body = cjson.decode(found[3])
  if body.deleted then return found end
  if kind == 'edit' then
    body.text = text
    body.edited_ms = tonumber(time)
  elseif kind == 'delete' then
    local by = ''
    if cjson.decode(data).moderated then by = user end
    body = {deleted = true, deleted_by = by}
  else
    local details = cjson.decode(data)
    local reactions = body.reactions or {}
    local at = false
    for n, reaction in ipairs(reactions) do
      if reaction[1] == details.emoji then at = n end
    end
    local users, keys = {}, {}
    if at then users, keys = reactions[at][2], reactions[at][3] end
    local has = false
    for n, key in ipairs(keys) do
      if key == details.key then has = n end
    end
    if details.removed and has then
      table.remove(users, has)
      table.remove(keys, has)
    elseif not details.removed and not has and (at or #reactions < MAX_REACTION_KINDS) then
      table.insert(users, user)
      table.insert(keys, details.key)
    else
      return found
    end
    if not at then
      table.insert(reactions, {details.emoji, users, keys})
    elseif #users > 0 then
      reactions[at] = {details.emoji, users, keys}
    else
      table.remove(reactions, at)
    end
    if #reactions > 0 then body.reactions = reactions else body.reactions = nil end
  end
  found[3] = cjson.encode(body)
  redis.call('HSET', r.bodies, target, found[3])
  return found
end
-- Drops the bodies of messages the log no longer keeps, up to 1,000 a call: `from`
-- moves first, so the hash is never emptied (rule 5).
local function trim_bodies(r)
  local oldest = redis.call('XRANGE', r.log, '-', '+', 'COUNT', 1)
  if #oldest == 0 then return end
  local first = tonumber(string.match(oldest[1][1], '^(%d+)'))
  local from = tonumber(redis.call('HGET', r.bodies, 'from') or '1')
  if from >= first then return end
  local upto = math.min(first - 1, from + 999)
  redis.call('HSET', r.bodies, 'from', upto + 1)
  local gone = {}
  for seq = from, upto do table.insert(gone, seq) end
  redis.call('HDEL', r.bodies, unpack(gone))
end
local epochs, logged, written = {}, {}, {}
for i = 8 + rooms, #ARGV, 13 do
  local place = tonumber(ARGV[i])
  local r = room(place)
  local user, text, time, action, sender, id =
    ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
  local kind, data, effects = ARGV[i + 7], ARGV[i + 8], ARGV[i + 9]
  local reply_to, target, account = ARGV[i + 10], ARGV[i + 11], ARGV[i + 12]
  local fields = {'user', user, 'time', time, 'action', action}
  if kind == 'moderation' then
    table.insert(fields, 'text')
    table.insert(fields, text)
  end
  if kind ~= 'message' then
    for _, part in ipairs({'kind', kind, 'data', data, 'effects', effects}) do
      table.insert(fields, part)
    end
  end
  if reply_to ~= '0' then
    table.insert(fields, 'reply_to')
    table.insert(fields, reply_to)
  end
  if target ~= '0' then
    table.insert(fields, 'target')
    table.insert(fields, target)
  end
  if account ~= '' then
    table.insert(fields, 'account')
    table.insert(fields, account)
  end
  local epoch = epochs[place] or epoch_of(r.epoch, candidate)
  epochs[place] = epoch
  local retry = sender .. '|' .. id
  local seq = false
  if id ~= '' then seq = redis.call('HGET', r.ids, retry) end
  if seq then
    table.insert(out, -tonumber(seq))
    table.insert(out, epoch)
    table.insert(out, '')
  else
    seq = redis.call('INCR', r.seq)
    if kind == 'message' then
      redis.call('HSET', r.bodies, seq, cjson.encode({text = text}))
    end
    if staged then
      redis.call('XADD', r.staged, seq .. '-0', 'epoch', epoch, unpack(fields))
    else
      redis.call('XADD', r.log, 'MAXLEN', '~', keep[place], seq .. '-0', 'epoch', epoch,
        unpack(fields))
      logged[place] = true
    end
    written[place] = true
    if effects ~= '' then
      for _, e in ipairs(cjson.decode(effects)) do
        if e[1] == 'set' then
          redis.call('HSET', r.state, e[2] .. '|' .. e[3], e[4])
        else
          redis.call('HDEL', r.state, e[2] .. '|' .. e[3])
        end
      end
    end
    if id ~= '' then remember(r, retry, seq) end
    table.insert(out, seq)
    table.insert(out, epoch)
    if target ~= '0' and kind ~= 'moderation' then
      table.insert(out, revise(r, kind, target, user, text, time, data))
    else
      table.insert(out, '')
    end
  end
end
for place in pairs(written) do trim_bodies(room(place)) end
for place in pairs(logged) do tell(room(place).news) end
return out
"""
)

# A room's entries as they are now, each {id, fields, body} (body: a message's text and
# revision from `bodies`, "" for other entries). KEYS: the room's log and bodies. ARGV:
# after and upto (the entries numbered in (after, upto]; none when upto <= after), newest
# (that many newest entries instead, 0: none), the number of bodies asked for alone, those
# numbers (entries the caller read already, as a tail does), then numbers of targets
# wanted whole. The targets of the changes among the entries read come too. Returns
# {entries, targets, bodies}: one call, so a message and the change to it are of one moment.
READ = """
local log, bodies = KEYS[1], KEYS[2]
local after, upto, newest = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local asked = tonumber(ARGV[4])
local function seq_of(id) return string.match(id, '^(%d+)') end
local function target_of(fields)
  for at = 1, #fields, 2 do
    if fields[at] == 'target' then return fields[at + 1] end
  end
  return false
end
local entries, seen, wanted = {}, {}, {}
local found = {}
if upto > after then
  found = redis.call('XRANGE', log, (after + 1) .. '-0', upto .. '-0')
elseif newest > 0 then
  found = redis.call('XREVRANGE', log, '+', '-', 'COUNT', newest)
end
for _, entry in ipairs(found) do
  local seq = seq_of(entry[1])
  seen[seq] = true
  table.insert(entries, {entry[1], entry[2], redis.call('HGET', bodies, seq) or ''})
  local target = target_of(entry[2])
  if target then table.insert(wanted, target) end
end
local texts = {}
for at = 5, 4 + asked do
  table.insert(texts, redis.call('HGET', bodies, ARGV[at]) or '')
end
for at = 5 + asked, #ARGV do table.insert(wanted, ARGV[at]) end
local targets = {}
for _, target in ipairs(wanted) do
  if not seen[target] then
    seen[target] = true
    local entry = redis.call('XRANGE', log, target .. '-0', target .. '-0')
    if #entry > 0 then
      table.insert(targets, {entry[1][1], entry[1][2], redis.call('HGET', bodies, target) or ''})
    end
  end
end
return {entries, targets, texts}
"""

# With ?replicas=N, once Redis said N replicas have a batch (WAIT): moves every staged
# message numbered up to `upto` into the log, in order. Those numbered before the batch
# (other servers', in the same slot) were written before it, so they are on the
# replicas too. KEYS: per room its staged and log. ARGV: per room upto, how many
# messages its log keeps (as APPEND chose) and its news channel. Returns nothing.
COMMIT = (
    COMMON
    + """
for place = 1, #KEYS / 2 do
  local staged, log = KEYS[2 * place - 1], KEYS[2 * place]
  local upto, history, news = ARGV[3 * place - 2], ARGV[3 * place - 1], ARGV[3 * place]
  local entries = redis.call('XRANGE', staged, '-', upto .. '-0')
  if #entries > 0 then
    local last = top(log)
    for _, entry in ipairs(entries) do
      if tonumber(string.match(entry[1], '^(%d+)')) > last then
        redis.call('XADD', log, 'MAXLEN', '~', history, entry[1], unpack(entry[2]))
      end
    end
    redis.call('XTRIM', staged, 'MINID', (tonumber(upto) + 1) .. '-0')
    tell(news)
  end
end
return 0
"""
)

# KEYS: per room its log, epoch and staged. ARGV: candidate epoch. Returns per room its
# newest number, its epoch, and the number of its oldest staged message (0: none).
HEADS = (
    COMMON
    + """
local out = {}
for at = 1, #KEYS, 3 do
  table.insert(out, top(KEYS[at]))
  table.insert(out, epoch_of(KEYS[at + 1], ARGV[1] .. '-' .. at))
  local oldest = redis.call('XRANGE', KEYS[at + 2], '-', '+', 'COUNT', 1)
  if #oldest > 0 then
    table.insert(out, tonumber(string.match(oldest[1][1], '^(%d+)')))
  else
    table.insert(out, 0)
  end
end
return out
"""
)

# Writes the room's writer again (so a WAIT after it covers every write before), and
# returns the newest staged number (0: none). KEYS: staged, writer.
STAGED = """
local info = redis.call('INFO', 'replication')
redis.call('SET', KEYS[2], string.match(info, 'master_replid:(%w+)'))
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #newest == 0 then return 0 end
return tonumber(string.match(newest[1][1], '^(%d+)'))
"""

# KEYS: the room's presence, log and epoch. ARGV: candidate epoch. Returns {newest
# message number, newest presence id, epoch}.
POSITION = (
    COMMON
    + """
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local last = '0-0'
if #newest > 0 then last = newest[1][1] end
return {top(KEYS[2]), last, epoch_of(KEYS[3], ARGV[1])}
"""
)

# Presence: per room a hash name -> holder (server id "/" number), a hash name ->
# session, hashes name_key -> name and name -> name_key (names are unique by key: see
# purechat.core.names), a stream of joins and leaves whose ids are `<newest message
# number>-*`, so they merge with the messages in the order they happened, and per
# server a set of its seats (`held`). `room_at(n)` takes a room's keys from KEYS[n] on,
# in `RoomKeys.for_presence` order (the server's held set last).
PRESENCE = (
    COMMON
    + f"""
local function room_at(at)
  return {{members = KEYS[at], sessions = KEYS[at + 1], keys = KEYS[at + 2],
    key_of = KEYS[at + 3], presence = KEYS[at + 4], log = KEYS[at + 5], held = KEYS[at + 6]}}
end
local function log_change(r, kind, name, time)
  return redis.call('XADD', r.presence, 'MAXLEN', '~', {PRESENCE_KEPT},
    top(r.log) .. '-*', 'kind', kind, 'user', name, 'time', time)
end
local function named(r, nkey, name)
  local holding = redis.call('HGET', r.keys, nkey)
  if holding and redis.call('HEXISTS', r.members, holding) == 1 then return holding end
  if redis.call('HEXISTS', r.members, name) == 1 then return name end
  return false
end
local function seat(name, holder) return cjson.encode({{name, holder}}) end
local function hold(r, name, holder, session, nkey)
  redis.call('HSET', r.members, name, holder)
  redis.call('HSET', r.keys, nkey, name)
  redis.call('HSET', r.key_of, name, nkey)
  if session ~= '' then redis.call('HSET', r.sessions, name, session) end
  redis.call('SADD', r.held, seat(name, holder))
end
-- Frees name if holder holds it, logging the leave first. It may empty the members,
-- sessions and name hashes, so a later seat of the same call can meet a missing key
-- while the slot moves (rule 5): the call fails there, and a retry finishes the job.
local function vacate(r, name, holder, time)
  if redis.call('HGET', r.members, name) ~= holder then return 0 end
  log_change(r, 'leave', name, time)
  redis.call('HDEL', r.members, name)
  local nkey = redis.call('HGET', r.key_of, name)
  if nkey then
    redis.call('HDEL', r.key_of, name)
    if redis.call('HGET', r.keys, nkey) == name then redis.call('HDEL', r.keys, nkey) end
  end
  redis.call('HDEL', r.sessions, name)
  return 1
end
"""
)

# KEYS: the room's presence keys (its holder's server's held set last), its epoch.
# ARGV: holder, session, time, candidate epoch, news channel, candidate names each with
# its name_key. Returns nil when all are taken (a name is taken when a name with its
# key is), else {name, newest message number, presence id before the join, members,
# epoch}. A name taken over from an earlier stream of the same session stays in that
# stream's server's held set: that set is not this call's to touch (rule 4), and the
# earlier holder's leave or sweep finds the name held by another and only drops it.
JOIN = (
    PRESENCE
    + """
local r = room_at(1)
local holder, session, time, candidate, news = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
for i = 6, #ARGV, 2 do
  local nkey = ARGV[i + 1]
  local name = named(r, nkey, ARGV[i]) or ARGV[i]
  local earlier = redis.call('HGET', r.members, name)
  if not earlier
    or (session ~= '' and redis.call('HGET', r.sessions, name) == session) then
    local newest = redis.call('XREVRANGE', r.presence, '+', '-', 'COUNT', 1)
    local before = '0-0'
    if #newest > 0 then before = newest[1][1] end
    hold(r, name, holder, session, nkey)
    if not earlier then
      log_change(r, 'join', name, time)
      tell(news)
    end
    return {name, top(r.log), before, redis.call('HKEYS', r.members),
      epoch_of(KEYS[8], candidate)}
  end
end
return false
"""
)

# KEYS: the room's presence keys, with the held set of the seats' server. ARGV: time,
# news channel, then name and holder per seat. An empty name stands for whatever name
# the holder holds in the room (a join whose answer was lost).
LEAVE = (
    PRESENCE
    + """
local r = room_at(1)
local gone = 0
for i = 3, #ARGV, 2 do
  local name, holder = ARGV[i], ARGV[i + 1]
  if name == '' then
    local held = redis.call('HGETALL', r.members)
    for j = 1, #held, 2 do if held[j + 1] == holder then name = held[j] end end
  end
  if name ~= '' then
    gone = gone + vacate(r, name, holder, ARGV[1])
    redis.call('SREM', r.held, seat(name, holder))
  end
end
if gone > 0 then tell(ARGV[2]) end
return gone
"""
)

# KEYS: as LEAVE's. ARGV: time, news channel, then name, holder, session and name_key
# per seat. Returns the seats others took meanwhile (the name or a look-alike of it),
# flattened as name, holder.
RESTORE = (
    PRESENCE
    + """
local r = room_at(1)
local lost = {}
local joined = false
for i = 3, #ARGV, 4 do
  local name, holder, session, nkey = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local owner = redis.call('HGET', r.members, name)
  local other = named(r, nkey, name)
  if (other and other ~= name) or (owner and owner ~= holder) then
    table.insert(lost, name)
    table.insert(lost, holder)
  else
    hold(r, name, holder, session, nkey)
    if not owner then
      log_change(r, 'join', name, ARGV[1])
      joined = true
    end
  end
end
if joined then tell(ARGV[2]) end
return lost
"""
)

# Frees up to `limit` seats of a server (stopped, or gone silent) in one room. KEYS: the
# room's presence keys, with that server's held set. ARGV: time, news channel, limit.
# Returns {members freed, seats looked at}: as many seats as the limit means call again.
RETIRE_ROOM = (
    PRESENCE
    + """
local r = room_at(1)
local seats = redis.call('SRANDMEMBER', r.held, tonumber(ARGV[3]))
local gone = 0
for _, held in ipairs(seats) do
  local parts = cjson.decode(held)
  gone = gone + vacate(r, parts[1], parts[2], ARGV[1])
  redis.call('SREM', r.held, held)
end
if gone > 0 then tell(ARGV[2]) end
return {gone, #seats}
"""
)

# KEYS: the room's members and log. Returns {named members, newest number}.
ROOM_INFO = (
    COMMON
    + """
return {redis.call('HLEN', KEYS[1]), top(KEYS[2])}
"""
)

# The servers' slot. KEYS: alive, sweep, the server's rooms. ARGV: server, ttl in ms,
# the number of rooms to list, those rooms, then rooms to unlist. Returns 1 when the
# server's heartbeat was still alive, 0 when it had lapsed (its members must be listed
# again), -1 while another server sweeps it (its heartbeat waits for the sweep to end,
# so that nothing it lists again is swept after).
HEARTBEAT = (
    COMMON
    + """
local server, now = ARGV[1], now_ms()
local claimed = redis.call('HGET', KEYS[2], server)
if claimed and tonumber(claimed) > now then return -1 end
local alive = redis.call('ZSCORE', KEYS[1], server)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), server)
local listed = 3 + tonumber(ARGV[3])
for i = 4, listed, 1000 do
  redis.call('SADD', KEYS[3], unpack(ARGV, i, math.min(i + 999, listed)))
end
for i = listed + 1, #ARGV, 1000 do
  redis.call('SREM', KEYS[3], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
if alive and tonumber(alive) > now then return 1 end
return 0
"""
)

# KEYS: alive, sweep. ARGV: claim in ms, most servers. Claims servers whose heartbeat
# expired and that nobody else is sweeping; returns them.
CLAIM = (
    COMMON
    + """
local now = now_ms()
local claimed = {}
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'LIMIT', 0, ARGV[2])
for _, server in ipairs(dead) do
  local claim = redis.call('HGET', KEYS[2], server)
  if not claim or tonumber(claim) <= now then
    redis.call('HSET', KEYS[2], server, now + tonumber(ARGV[1]))
    table.insert(claimed, server)
  end
end
return claimed
"""
)

# KEYS: alive, sweep, the server's rooms. ARGV: server, "1" when it retires itself.
# Forgets a swept server (unless it came back meanwhile) and ends the claim.
FORGET = (
    COMMON
    + """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if ARGV[2] == '1' or not score or tonumber(score) <= now_ms() then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('DEL', KEYS[3])
end
redis.call('HDEL', KEYS[2], ARGV[1])
return 0
"""
)

# KEYS: the room's behind set. ARGV: reader id, milliseconds it is behind for ("0":
# caught up). Expired readers (servers that died behind) are dropped last.
REPORT_BEHIND = (
    COMMON
    + """
local now = now_ms()
if ARGV[2] == '0' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
return 0
"""
)

# KEYS: the room's behind set. ARGV: reader id. Returns 1 when another reader is behind.
BEHIND_ELSEWHERE = (
    COMMON
    + """
for _, reader in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now_ms(), '+inf')) do
  if reader ~= ARGV[1] then return 1 end
end
return 0
"""
)


# The directory's records (store/directory.py). KEYS: the stream and its counter (one
# slot). ARGV: the record. Returns its number.
RECORD = """
local number = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], number .. '-0', 'value', ARGV[1])
return number
"""

# A room's state changed outside a log entry. KEYS: the room's state. ARGV: effects
# (JSON, as APPEND's).
EFFECTS = """
for _, e in ipairs(cjson.decode(ARGV[1])) do
  if e[1] == 'set' then
    redis.call('HSET', KEYS[1], e[2] .. '|' .. e[3], e[4])
  else
    redis.call('HDEL', KEYS[1], e[2] .. '|' .. e[3])
  end
end
return 0
"""

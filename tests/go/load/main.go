// Command load plays many members of the tutorial's chat.ChatService/JoinChat with
// grpc-go, the way the tutorial's Go client connects: grpc.Dial with default options
// (so BDP pings and window updates are on), one connection per member unless
// -streams-per-conn says otherwise. It measures what a room of such clients sees and
// prints one summary (-json: one JSON line), so bench/run.py and the tests can drive
// any server of the contract: purechat, the tutorial's grpc-go server, grpcio.
//
// A run has phases:
//  1. join: members open their JoinChat streams, at most -join-concurrency at a time
//     (1 = one after another, 0 = all at once); -nonreaders extra members join too
//     and never call Recv;
//  2. confirm: member 0 sends a "probe N" message every -probe-interval until every
//     reader has received something (the server has it in the room), at most
//     -join-timeout;
//  3. hello (-hello): every reader sends "hello INDEX" and the senders wait until every
//     reader has every hello, at most -hello-timeout;
//  4. pause (-pause): a {"event":"joined",...} line on stdout, then a line on stdin
//     (the caller measures the server's memory meanwhile);
//  5. data: members 0..S-1 send -messages each (or for -duration), at -rate per
//     sender or flat out; the text starts with "SENDER:SEQ:SEND_UNIX_NANOS:" and is
//     padded with 'x' to -size bytes, so receivers check order per sender and
//     compute latency; then the run waits until every reader has everything, or no
//     delivery came for -idle, or -drain passed;
//  6. the non-readers are read at last, to see whether the server removed them.
//
// Losses, errors and disconnects are reported, never fatal: the exit status is
// non-zero only for bad flags (2) or when no member could join (1).
//
// The chatpb package is generated from proto/chat.proto at build time (tests/gobuild.py).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	pb "purechatcompat/chatpb"

	"google.golang.org/grpc"
	"google.golang.org/grpc/grpclog"
	"google.golang.org/grpc/status"
)

type config struct {
	addrs           []string
	members         int
	streamsPerConn  int
	senders         int
	messages        int
	rate            float64
	size            int
	hello           bool
	nonreaders      int
	joinConcurrency int
	probeInterval   time.Duration
	joinTimeout     time.Duration
	helloTimeout    time.Duration
	duration        time.Duration
	warmup          time.Duration
	idle            time.Duration
	drain           time.Duration
	timeout         time.Duration
	pause           bool
	jsonOut         bool
}

func parseFlags() config {
	var c config
	var addrs string
	flag.StringVar(&addrs, "addr", "127.0.0.1:50051", "server address; a comma-separated list spreads connections over several servers (round robin)")
	flag.IntVar(&c.members, "members", 10, "members that read (senders included)")
	flag.IntVar(&c.streamsPerConn, "streams-per-conn", 1, "streams per connection: 1 = a connection per member, as the tutorial's client; K = members/K connections")
	flag.IntVar(&c.senders, "senders", 1, "members 0..S-1 send data messages")
	flag.IntVar(&c.messages, "messages", 100, "data messages per sender (0 = as many as -duration allows)")
	flag.Float64Var(&c.rate, "rate", 0, "messages a second per sender (0 = flat out)")
	flag.IntVar(&c.size, "size", 64, "bytes of text per data message (padded)")
	flag.BoolVar(&c.hello, "hello", false, "every reader says hello first; senders start when every reader has every hello (or -hello-timeout)")
	flag.IntVar(&c.nonreaders, "nonreaders", 0, "extra members, on connections of their own, that join and never call Recv")
	flag.IntVar(&c.joinConcurrency, "join-concurrency", 100, "members joining at once (1 = one after another, 0 = all at once)")
	flag.DurationVar(&c.probeInterval, "probe-interval", 50*time.Millisecond, "how often member 0 sends a probe while joins are confirmed")
	flag.DurationVar(&c.joinTimeout, "join-timeout", 60*time.Second, "bound on joining and confirming")
	flag.DurationVar(&c.helloTimeout, "hello-timeout", 30*time.Second, "bound on the hello phase")
	flag.DurationVar(&c.duration, "duration", 0, "send for this long (with -messages 0, or whichever ends first)")
	flag.DurationVar(&c.warmup, "warmup", 0, "left out of deliveries/s and latency at the start of sending")
	flag.DurationVar(&c.idle, "idle", 3*time.Second, "after sending, stop waiting when nothing arrived for this long")
	flag.DurationVar(&c.drain, "drain", 15*time.Second, "after sending, wait at most this long for the rest")
	flag.DurationVar(&c.timeout, "timeout", 120*time.Second, "bound on the whole run")
	flag.BoolVar(&c.pause, "pause", false, "after joining, print a joined line and wait for a line on stdin")
	flag.BoolVar(&c.jsonOut, "json", false, "print the summary as one JSON line")
	flag.Parse()
	for _, a := range strings.Split(addrs, ",") {
		if a = strings.TrimSpace(a); a != "" {
			c.addrs = append(c.addrs, a)
		}
	}
	usage := func(format string, args ...interface{}) {
		fmt.Fprintf(os.Stderr, "load: "+format+"\n", args...)
		flag.Usage()
		os.Exit(2)
	}
	switch {
	case flag.NArg() > 0:
		usage("unexpected arguments %q", flag.Args())
	case len(c.addrs) == 0:
		usage("-addr is empty")
	case c.members < 1:
		usage("-members must be at least 1")
	case c.streamsPerConn < 1:
		usage("-streams-per-conn must be at least 1")
	case c.senders < 0 || c.senders > c.members:
		usage("-senders must be between 0 and -members")
	case c.senders > 0 && c.messages <= 0 && c.duration <= 0:
		usage("senders need -messages or -duration")
	case c.messages < 0 || c.rate < 0 || c.nonreaders < 0 || c.joinConcurrency < 0:
		usage("counts and rates cannot be negative")
	case c.size < 1 || c.size > 1<<20:
		usage("-size must be between 1 and 1 MiB")
	case c.duration > 0 && c.warmup >= c.duration:
		usage("-warmup must be shorter than -duration")
	}
	return c
}

// bitset records which sequence numbers (or hello indexes) a member has seen.
type bitset []uint64

// set marks i and reports whether it was new.
func (b *bitset) set(i int64) bool {
	word := int(i >> 6)
	for word >= len(*b) {
		*b = append(*b, 0)
	}
	bit := uint64(1) << uint(i&63)
	if (*b)[word]&bit != 0 {
		return false
	}
	(*b)[word] |= bit
	return true
}

type member struct {
	index  int
	name   string
	reader bool
	conn   int
	stream pb.ChatService_JoinChatClient
	cancel context.CancelFunc
	joined bool
	done   chan struct{} // closed when its Recv loop returns (or it never joined)

	// Read by the main goroutine while the Recv loop runs.
	firstAt     int64 // atomic: unix nanos of its first message of any kind, 0 before
	lastAt      int64 // atomic: unix nanos of its latest data message
	lastHelloAt int64 // atomic: unix nanos of its latest new hello
	distinct    int64 // atomic: data messages, each counted once
	hellos      int64 // atomic: distinct hellos
	lastProbe   int64 // atomic: the highest probe number received
	ended       int32 // atomic: 1 once its stream ended without us ending it

	// Owned by the Recv loop until done is closed.
	helloSeen       bitset
	seen            []bitset
	maxSeq          []int64
	received        int64
	duplicates      int64
	orderViolations int64
	malformed       int64
	stale           int64
	inWindow        int64
	latencies       []uint32 // microseconds
	err             string
}

type run struct {
	cfg     config
	members []*member // readers 0..N-1, then non-readers
	conns   []*grpc.ClientConn
	once    []sync.Once
	dialErr []error

	windowStart int64 // atomic, unix nanos: deliveries and sends from here are measured
	windowEnd   int64 // atomic, unix nanos, 0 = open
	stopping    int32 // atomic: 1 once we end the streams ourselves
	sending     int32 // atomic: senders still sending
	sent        []int64
	sendErrors  counter
	logs        *captureLogger
	padding     string
	born        int64 // unix nanos when this process started
}

type counter struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *counter) add(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]int{}
	}
	c.m[key]++
}

func (c *counter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.m {
		out[k] = v
	}
	return out
}

// captureLogger takes grpc-go's log: warnings and errors are counted (digits folded,
// so one kind of message is one key), and of the info lines only GOAWAYs, which the
// stream errors do not show (a stream ended by a GOAWAY says "transport is closing").
type captureLogger struct {
	run   *run
	lines counter
}

func (l *captureLogger) keep(level string, args ...interface{}) {
	if atomic.LoadInt32(&l.run.stopping) == 1 {
		return
	}
	text := fmt.Sprint(args...)
	if level == "info" && !strings.Contains(text, "GoAway") {
		return
	}
	var b strings.Builder
	digits := false
	for _, r := range text {
		if r >= '0' && r <= '9' {
			if !digits {
				b.WriteByte('N')
			}
			digits = true
			continue
		}
		digits = false
		b.WriteRune(r)
	}
	key := b.String()
	if len(key) > 200 {
		key = key[:200]
	}
	l.lines.add(level + ": " + key)
}

func (l *captureLogger) Info(args ...interface{})            { l.keep("info", args...) }
func (l *captureLogger) Infoln(args ...interface{})          { l.keep("info", args...) }
func (l *captureLogger) Infof(f string, args ...interface{}) { l.keep("info", fmt.Sprintf(f, args...)) }
func (l *captureLogger) Warning(args ...interface{})         { l.keep("warning", args...) }
func (l *captureLogger) Warningln(args ...interface{})       { l.keep("warning", args...) }
func (l *captureLogger) Warningf(f string, args ...interface{}) {
	l.keep("warning", fmt.Sprintf(f, args...))
}
func (l *captureLogger) Error(args ...interface{})   { l.keep("error", args...) }
func (l *captureLogger) Errorln(args ...interface{}) { l.keep("error", args...) }
func (l *captureLogger) Errorf(f string, args ...interface{}) {
	l.keep("error", fmt.Sprintf(f, args...))
}
func (l *captureLogger) Fatal(args ...interface{})               { l.fatal(fmt.Sprint(args...)) }
func (l *captureLogger) Fatalln(args ...interface{})             { l.fatal(fmt.Sprint(args...)) }
func (l *captureLogger) Fatalf(f string, args ...interface{})    { l.fatal(fmt.Sprintf(f, args...)) }
func (l *captureLogger) InfoDepth(_ int, args ...interface{})    { l.keep("info", args...) }
func (l *captureLogger) WarningDepth(_ int, args ...interface{}) { l.keep("warning", args...) }
func (l *captureLogger) ErrorDepth(_ int, args ...interface{})   { l.keep("error", args...) }
func (l *captureLogger) FatalDepth(_ int, args ...interface{})   { l.fatal(fmt.Sprint(args...)) }
func (l *captureLogger) V(int) bool                              { return true }
func (l *captureLogger) fatal(text string)                       { fmt.Fprintln(os.Stderr, text); os.Exit(1) }

func describe(err error) string {
	if err == io.EOF {
		return "OK: the server ended the stream"
	}
	st := status.Convert(err)
	return fmt.Sprintf("%s: %s", st.Code(), st.Message())
}

func newRun(c config) *run {
	r := &run{cfg: c, sent: make([]int64, c.senders)}
	readerConns := (c.members + c.streamsPerConn - 1) / c.streamsPerConn
	total := c.members + c.nonreaders
	r.conns = make([]*grpc.ClientConn, readerConns+c.nonreaders)
	r.once = make([]sync.Once, len(r.conns))
	r.dialErr = make([]error, len(r.conns))
	for i := 0; i < total; i++ {
		m := &member{index: i, name: fmt.Sprintf("m%d", i), reader: i < c.members, done: make(chan struct{})}
		if m.reader {
			m.conn = i / c.streamsPerConn
			m.seen = make([]bitset, c.senders)
			m.maxSeq = make([]int64, c.senders)
			for s := range m.maxSeq {
				m.maxSeq[s] = -1
			}
		} else {
			m.conn = readerConns + (i - c.members) // a non-reader stalls only its own connection
		}
		r.members = append(r.members, m)
	}
	r.padding = strings.Repeat("x", c.size)
	r.born = time.Now().UnixNano()
	return r
}

func (r *run) readers() []*member { return r.members[:r.cfg.members] }

func (r *run) dial(conn int) (*grpc.ClientConn, error) {
	r.once[conn].Do(func() {
		addr := r.cfg.addrs[conn%len(r.cfg.addrs)]
		r.conns[conn], r.dialErr[conn] = grpc.Dial(addr, grpc.WithInsecure())
	})
	return r.conns[conn], r.dialErr[conn]
}

func (r *run) joinOne(m *member) {
	conn, err := r.dial(m.conn)
	if err != nil {
		m.err = "joining: " + describe(err)
		close(m.done)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := pb.NewChatServiceClient(conn).JoinChat(ctx)
	if err != nil {
		cancel()
		m.err = "joining: " + describe(err)
		close(m.done)
		return
	}
	m.stream, m.cancel, m.joined = stream, cancel, true
	if m.reader {
		go r.receive(m)
	}
}

func (r *run) receive(m *member) {
	defer close(m.done)
	for {
		msg, err := m.stream.Recv()
		if err != nil {
			if atomic.LoadInt32(&r.stopping) == 0 {
				m.err = describe(err)
				atomic.StoreInt32(&m.ended, 1)
			}
			return
		}
		now := time.Now().UnixNano()
		if atomic.LoadInt64(&m.firstAt) == 0 {
			atomic.StoreInt64(&m.firstAt, now)
		}
		r.classify(m, msg.GetText(), now)
	}
}

func (r *run) classify(m *member, text string, now int64) {
	if text == "" {
		return
	}
	if c := text[0]; c >= '0' && c <= '9' {
		r.data(m, text, now)
		return
	}
	if strings.HasPrefix(text, "hello ") {
		if i, err := strconv.Atoi(text[6:]); err == nil && i >= 0 {
			if m.helloSeen.set(int64(i)) {
				atomic.AddInt64(&m.hellos, 1)
				atomic.StoreInt64(&m.lastHelloAt, now)
			} else {
				m.duplicates++
			}
		}
	}
	if strings.HasPrefix(text, "probe ") {
		if n, err := strconv.ParseInt(text[6:], 10, 64); err == nil && n > atomic.LoadInt64(&m.lastProbe) {
			atomic.StoreInt64(&m.lastProbe, n)
		}
	}
}

// parseData reads "SENDER:SEQ:NANOS:" without allocating.
func parseData(text string) (sender int, seq, sent int64, ok bool) {
	var fields [3]int64
	i := 0
	for f := range fields {
		start := i
		var v int64
		for i < len(text) && text[i] >= '0' && text[i] <= '9' {
			v = v*10 + int64(text[i]-'0')
			i++
		}
		if i == start || i >= len(text) || text[i] != ':' {
			return 0, 0, 0, false
		}
		fields[f] = v
		i++
	}
	return int(fields[0]), fields[1], fields[2], true
}

func (r *run) data(m *member, text string, now int64) {
	sender, seq, sent, ok := parseData(text)
	if !ok || sender >= r.cfg.senders {
		m.malformed++
		return
	}
	if sent < r.born {
		m.stale++ // sent before this process started: a server's history of an earlier run
		return
	}
	m.received++
	if !m.seen[sender].set(seq) {
		m.duplicates++
	} else {
		if seq < m.maxSeq[sender] {
			m.orderViolations++ // a later message of this sender came first
		} else {
			m.maxSeq[sender] = seq
		}
		atomic.AddInt64(&m.distinct, 1)
	}
	start, end := atomic.LoadInt64(&r.windowStart), atomic.LoadInt64(&r.windowEnd)
	if now >= start && (end == 0 || now < end) {
		m.inWindow++
	}
	if sent >= start && (end == 0 || sent < end) {
		micros := (now - sent) / 1000
		if micros < 0 {
			micros = 0
		} else if micros > math.MaxUint32 {
			micros = math.MaxUint32
		}
		m.latencies = append(m.latencies, uint32(micros))
	}
	atomic.StoreInt64(&m.lastAt, now)
}

type joinResult struct {
	Concurrency    int     `json:"concurrency"`
	Connections    int     `json:"connections"`
	Joined         int     `json:"joined"`
	Failed         int     `json:"failed"`
	StreamsSeconds float64 `json:"streams_seconds"`
	Confirmed      int     `json:"confirmed"`
	JoinedSeconds  float64 `json:"joined_seconds"`
	JoinsPerSecond float64 `json:"joins_per_s"`
	Probes         int     `json:"probes"`
}

func (r *run) join(deadline time.Time) joinResult {
	total := len(r.members)
	concurrency := r.cfg.joinConcurrency
	if concurrency <= 0 || concurrency > total {
		concurrency = total
	}
	started := time.Now()
	slots := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for _, m := range r.members {
		slots <- struct{}{}
		wg.Add(1)
		go func(m *member) {
			defer func() { <-slots; wg.Done() }()
			r.joinOne(m)
		}(m)
	}
	wg.Wait()
	result := joinResult{Concurrency: r.cfg.joinConcurrency, Connections: len(r.conns)}
	result.StreamsSeconds = time.Since(started).Seconds()
	for _, m := range r.members {
		if m.joined {
			result.Joined++
		} else {
			result.Failed++
		}
	}
	var prober *member
	for _, m := range r.readers() {
		if m.joined {
			prober = m
			break
		}
	}
	if prober == nil {
		return result
	}
	// Every reader has joined when each has received something: probes until then.
	bound := started.Add(r.cfg.joinTimeout)
	if deadline.Before(bound) {
		bound = deadline
	}
	confirmed := func() bool {
		for _, m := range r.readers() {
			if m.joined && atomic.LoadInt64(&m.firstAt) == 0 && atomic.LoadInt32(&m.ended) == 0 {
				return false
			}
		}
		return true
	}
	// The next probe waits until the previous one reached every member that had joined
	// when it was sent (or for a second more), so a slow server's probes do not pile up
	// and delay the joins they measure.
	count := func(pred func(m *member) bool) int {
		n := 0
		for _, m := range r.readers() {
			if pred(m) {
				n++
			}
		}
		return n
	}
	var sentAt time.Time
	present := 0
	for !confirmed() && time.Now().Before(bound) {
		now := time.Now()
		last := int64(result.Probes)
		delivered := count(func(m *member) bool { return atomic.LoadInt64(&m.lastProbe) >= last }) >= present
		if now.Sub(sentAt) >= r.cfg.probeInterval && (delivered || now.Sub(sentAt) >= r.cfg.probeInterval+time.Second) {
			present = count(func(m *member) bool { return atomic.LoadInt64(&m.firstAt) != 0 })
			result.Probes++
			text := "probe " + strconv.Itoa(result.Probes)
			if err := prober.stream.Send(&pb.ChatMessage{UserId: prober.name, Text: text}); err != nil {
				break // its receiver reports why
			}
			sentAt = now
		}
		time.Sleep(2 * time.Millisecond)
	}
	var last int64
	for _, m := range r.readers() {
		if at := atomic.LoadInt64(&m.firstAt); at != 0 {
			result.Confirmed++
			if at > last {
				last = at
			}
		}
	}
	if last != 0 {
		result.JoinedSeconds = float64(last-started.UnixNano()) / 1e9
		result.JoinsPerSecond = float64(result.Confirmed) / result.JoinedSeconds
	}
	return result
}

type helloResult struct {
	Seconds  float64 `json:"seconds"`
	Sent     int     `json:"sent"`
	Complete int     `json:"complete_members"`
}

func (r *run) sayHello(deadline time.Time) helloResult {
	started := time.Now()
	var wg sync.WaitGroup
	var sent int64
	for _, m := range r.readers() {
		if !m.joined {
			continue
		}
		wg.Add(1)
		go func(m *member) {
			defer wg.Done()
			text := "hello " + strconv.Itoa(m.index)
			if err := m.stream.Send(&pb.ChatMessage{UserId: m.name, Text: text}); err == nil {
				atomic.AddInt64(&sent, 1)
			}
		}(m)
	}
	wg.Wait()
	bound := started.Add(r.cfg.helloTimeout)
	if deadline.Before(bound) {
		bound = deadline
	}
	result := helloResult{Sent: int(sent)}
	for {
		result.Complete = 0
		waiting := false
		for _, m := range r.readers() {
			if atomic.LoadInt64(&m.hellos) >= sent {
				result.Complete++
			} else if m.joined && atomic.LoadInt32(&m.ended) == 0 {
				waiting = true
			}
		}
		if !waiting || !time.Now().Before(bound) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	var last int64
	for _, m := range r.readers() {
		if at := atomic.LoadInt64(&m.lastHelloAt); at > last {
			last = at
		}
	}
	if last > 0 {
		result.Seconds = float64(last-started.UnixNano()) / 1e9
	}
	return result
}

func (r *run) send(s int, m *member, start time.Time) {
	time.Sleep(time.Until(start))
	var interval time.Duration
	if r.cfg.rate > 0 {
		interval = time.Duration(float64(time.Second) / r.cfg.rate)
	}
	stop := start.Add(r.cfg.duration)
	next := start
	buf := make([]byte, 0, r.cfg.size+64)
	for seq := int64(0); r.cfg.messages == 0 || seq < int64(r.cfg.messages); seq++ {
		if interval > 0 {
			time.Sleep(time.Until(next))
			next = next.Add(interval)
		}
		now := time.Now()
		if r.cfg.duration > 0 && !now.Before(stop) {
			return
		}
		buf = strconv.AppendInt(buf[:0], int64(s), 10)
		buf = append(buf, ':')
		buf = strconv.AppendInt(buf, seq, 10)
		buf = append(buf, ':')
		buf = strconv.AppendInt(buf, now.UnixNano(), 10)
		buf = append(buf, ':')
		if len(buf) < r.cfg.size {
			buf = append(buf, r.padding[:r.cfg.size-len(buf)]...)
		}
		if err := m.stream.Send(&pb.ChatMessage{UserId: m.name, Text: string(buf)}); err != nil {
			if atomic.LoadInt32(&r.stopping) == 0 {
				r.sendErrors.add(fmt.Sprintf("sender %d: %v", s, err))
			}
			return
		}
		atomic.AddInt64(&r.sent[s], 1)
	}
}

func (r *run) totalSent() int64 {
	var total int64
	for s := range r.sent {
		total += atomic.LoadInt64(&r.sent[s])
	}
	return total
}

type dataResult struct {
	sendStart, sendEnd, finished time.Time
	stoppedBy                    string
	blockedSenders               int
	cpuShare                     float64 // CPU seconds per second over the window
}

func cpuSeconds() float64 {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0
	}
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano()).Seconds()
}

func (r *run) exchange(deadline time.Time) dataResult {
	start := time.Now().Add(10 * time.Millisecond)
	atomic.StoreInt64(&r.windowStart, start.Add(r.cfg.warmup).UnixNano())
	if r.cfg.duration > 0 {
		atomic.StoreInt64(&r.windowEnd, start.Add(r.cfg.duration).UnixNano())
	}
	// The client's CPU over the measured window says whether it, not the server, was
	// the bottleneck (it has one core in bench/run.py).
	cpu := make(chan float64, 1)
	go func() {
		from, until := atomic.LoadInt64(&r.windowStart), atomic.LoadInt64(&r.windowEnd)
		if until == 0 {
			cpu <- 0
			return
		}
		time.Sleep(time.Until(time.Unix(0, from)))
		before := cpuSeconds()
		time.Sleep(time.Until(time.Unix(0, until)))
		cpu <- (cpuSeconds() - before) / (float64(until-from) / 1e9)
	}()
	cpuBefore := cpuSeconds()
	var wg sync.WaitGroup
	for s := 0; s < r.cfg.senders; s++ {
		if m := r.members[s]; m.joined {
			wg.Add(1)
			atomic.AddInt32(&r.sending, 1)
			go func(s int, m *member) {
				defer wg.Done()
				defer atomic.AddInt32(&r.sending, -1)
				r.send(s, m, start)
			}(s, m)
		}
	}
	// A sender blocks in Send while the server does not read (flow control): with
	// -duration, wait for it at most a second past the end; cancelling its stream at
	// the end of the run releases it.
	sendersDone := make(chan struct{})
	go func() { wg.Wait(); close(sendersDone) }()
	bound := deadline
	if r.cfg.duration > 0 && start.Add(r.cfg.duration+time.Second).Before(bound) {
		bound = start.Add(r.cfg.duration + time.Second)
	}
	select {
	case <-sendersDone:
	case <-time.After(time.Until(bound)):
	}
	result := dataResult{sendStart: start, sendEnd: time.Now()}
	result.blockedSenders = int(atomic.LoadInt32(&r.sending))
	// Wait for the rest: until every reader has all, or it stalls, or time is up.
	lastProgress, lastCount := time.Now(), int64(-1)
	for {
		expected := r.totalSent()
		var count int64
		complete := true
		for _, m := range r.readers() {
			got := atomic.LoadInt64(&m.distinct)
			count += got
			if m.joined && got < expected && atomic.LoadInt32(&m.ended) == 0 {
				complete = false
			}
		}
		now := time.Now()
		if count != lastCount {
			lastCount, lastProgress = count, now
		}
		switch {
		case complete:
			result.stoppedBy = "complete"
		case now.Sub(lastProgress) >= r.cfg.idle:
			result.stoppedBy = "idle"
		case now.Sub(result.sendEnd) >= r.cfg.drain:
			result.stoppedBy = "drain"
		case !now.Before(deadline):
			result.stoppedBy = "timeout"
		}
		if result.stoppedBy != "" {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	result.finished = time.Now()
	result.cpuShare = <-cpu
	if result.cpuShare == 0 {
		result.cpuShare = (cpuSeconds() - cpuBefore) / result.finished.Sub(start).Seconds()
	}
	return result
}

// readNonreaders reads what the non-readers were sent, to learn whether the server
// removed them (their status follows the messages buffered for them) or kept them.
func (r *run) readNonreaders() map[string]int {
	outcomes := counter{}
	var wg sync.WaitGroup
	for _, m := range r.members[r.cfg.members:] {
		if !m.joined {
			outcomes.add(m.err)
			continue
		}
		wg.Add(1)
		go func(m *member) {
			defer wg.Done()
			finished := make(chan string, 1)
			go func() {
				for {
					if _, err := m.stream.Recv(); err != nil {
						finished <- describe(err)
						return
					}
				}
			}()
			select {
			case outcome := <-finished:
				outcomes.add(outcome)
			case <-time.After(time.Second):
				outcomes.add("still in the room")
				m.cancel()
			}
		}(m)
	}
	wg.Wait()
	return outcomes.snapshot()
}

type stats struct {
	Min    int64 `json:"min"`
	Median int64 `json:"median"`
	Max    int64 `json:"max"`
}

type latency struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

type summary struct {
	Addr              []string           `json:"addr"`
	Members           int                `json:"members"`
	Nonreaders        int                `json:"nonreaders"`
	StreamsPerConn    int                `json:"streams_per_conn"`
	Senders           int                `json:"senders"`
	Rate              float64            `json:"rate"`
	Size              int                `json:"size"`
	Join              joinResult         `json:"join"`
	Hello             *helloResult       `json:"hello,omitempty"`
	Sent              int64              `json:"sent"`
	ExpectedPerMember int64              `json:"expected_per_member"`
	Expected          int64              `json:"expected"`
	Received          int64              `json:"received"`
	Lost              int64              `json:"lost"`
	CompleteMembers   int                `json:"complete_members"`
	ReceivedPerMember stats              `json:"received_per_member"`
	OrderViolations   int64              `json:"order_violations"`
	Duplicates        int64              `json:"duplicates"`
	Malformed         int64              `json:"malformed"`
	Stale             int64              `json:"stale"`
	EndedMembers      int                `json:"ended_members"`
	Errors            map[string]int     `json:"errors"`
	ErrorMembers      map[string][]int   `json:"error_members"` // the first ten indexes (0 sends)
	SendErrors        map[string]int     `json:"send_errors"`
	NonreaderOutcomes map[string]int     `json:"nonreader_outcomes"`
	GrpcLog           map[string]int     `json:"grpc_log"`
	Latency           latency            `json:"latency"`
	MeasuredSeconds   float64            `json:"measured_seconds"`
	DeliveriesPerS    float64            `json:"deliveries_per_s"`
	SendSeconds       float64            `json:"send_seconds"`
	StoppedBy         string             `json:"stopped_by"`
	BlockedSenders    int                `json:"blocked_senders"` // still in Send a second after -duration
	ClientCPUShare    float64            `json:"client_cpu_share"`
	Phases            map[string]float64 `json:"phase_seconds"`
}

func (r *run) summarise(join joinResult, hello *helloResult, data dataResult, nonreaders map[string]int) summary {
	out := summary{
		Addr: r.cfg.addrs, Members: r.cfg.members, Nonreaders: r.cfg.nonreaders,
		StreamsPerConn: r.cfg.streamsPerConn, Senders: r.cfg.senders, Rate: r.cfg.rate,
		Size: r.cfg.size, Join: join, Hello: hello, StoppedBy: data.stoppedBy,
		BlockedSenders: data.blockedSenders,
		Errors:         map[string]int{}, ErrorMembers: map[string][]int{}, SendErrors: r.sendErrors.snapshot(),
		NonreaderOutcomes: nonreaders, GrpcLog: r.logs.lines.snapshot(),
	}
	out.Sent = r.totalSent()
	out.ExpectedPerMember = out.Sent
	var perMember []int64
	var latencies []uint32
	var inWindow, lastAt int64
	for _, m := range r.readers() {
		if m.err != "" {
			out.Errors[m.err]++
			if len(out.ErrorMembers[m.err]) < 10 {
				out.ErrorMembers[m.err] = append(out.ErrorMembers[m.err], m.index)
			}
		}
		if atomic.LoadInt32(&m.ended) == 1 {
			out.EndedMembers++
		}
		distinct := atomic.LoadInt64(&m.distinct)
		out.Expected += out.Sent
		out.Received += m.received
		out.Lost += out.Sent - distinct
		if m.joined && distinct >= out.Sent {
			out.CompleteMembers++
		}
		perMember = append(perMember, m.received)
		out.OrderViolations += m.orderViolations
		out.Duplicates += m.duplicates
		out.Malformed += m.malformed
		out.Stale += m.stale
		inWindow += m.inWindow
		latencies = append(latencies, m.latencies...)
		if at := atomic.LoadInt64(&m.lastAt); at > lastAt {
			lastAt = at
		}
	}
	sort.Slice(perMember, func(i, j int) bool { return perMember[i] < perMember[j] })
	if n := len(perMember); n > 0 {
		out.ReceivedPerMember = stats{perMember[0], perMember[n/2], perMember[n-1]}
	}
	if n := len(latencies); n > 0 {
		sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
		out.Latency = latency{
			Count: n,
			P50:   float64(latencies[n/2]) / 1000,
			P99:   float64(latencies[int(float64(n)*0.99)]) / 1000,
			Max:   float64(latencies[n-1]) / 1000,
		}
	}
	if r.cfg.senders > 0 && !data.sendStart.IsZero() {
		from := atomic.LoadInt64(&r.windowStart)
		until := atomic.LoadInt64(&r.windowEnd)
		if until == 0 {
			until = lastAt // a count of messages: measured until the last delivery
		}
		if until > from {
			out.MeasuredSeconds = float64(until-from) / 1e9
			out.DeliveriesPerS = float64(inWindow) / out.MeasuredSeconds
		}
		out.SendSeconds = data.sendEnd.Sub(data.sendStart).Seconds()
		out.ClientCPUShare = data.cpuShare
	}
	return out
}

func printText(s summary) {
	fmt.Printf("members %d (+%d non-readers) on %d connections to %s\n",
		s.Members, s.Nonreaders, s.Join.Connections, strings.Join(s.Addr, ","))
	fmt.Printf("joined %d, failed %d: streams open after %.3fs, %d confirmed after %.3fs (%.0f joins/s, %d probes)\n",
		s.Join.Joined, s.Join.Failed, s.Join.StreamsSeconds, s.Join.Confirmed, s.Join.JoinedSeconds,
		s.Join.JoinsPerSecond, s.Join.Probes)
	if s.Hello != nil {
		fmt.Printf("hello: %d sent, %d members heard all after %.3fs\n", s.Hello.Sent, s.Hello.Complete, s.Hello.Seconds)
	}
	fmt.Printf("sent %d; received %d of %d, lost %d; %d of %d members got everything (per member min %d, median %d, max %d)\n",
		s.Sent, s.Received, s.Expected, s.Lost, s.CompleteMembers, s.Members,
		s.ReceivedPerMember.Min, s.ReceivedPerMember.Median, s.ReceivedPerMember.Max)
	fmt.Printf("order violations %d, duplicates %d, from earlier runs %d; %.0f deliveries/s over %.3fs (stopped: %s; client CPU %.0f%%)\n",
		s.OrderViolations, s.Duplicates, s.Stale, s.DeliveriesPerS, s.MeasuredSeconds, s.StoppedBy, 100*s.ClientCPUShare)
	if s.BlockedSenders > 0 {
		fmt.Printf("%d senders were still blocked in Send (the server was not reading)\n", s.BlockedSenders)
	}
	fmt.Printf("latency over %d deliveries: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
		s.Latency.Count, s.Latency.P50, s.Latency.P99, s.Latency.Max)
	for _, group := range []struct {
		title string
		m     map[string]int
	}{{"stream ended", s.Errors}, {"send failed", s.SendErrors}, {"non-reader", s.NonreaderOutcomes}, {"grpc log", s.GrpcLog}} {
		keys := make([]string, 0, len(group.m))
		for k := range group.m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Printf("%s: %dx %s", group.title, group.m[k], k)
			if who, ok := s.ErrorMembers[k]; ok && group.title == "stream ended" {
				fmt.Printf(" (members %v)", who)
			}
			fmt.Println()
		}
	}
}

func main() {
	cfg := parseFlags()
	r := newRun(cfg)
	r.logs = &captureLogger{run: r}
	grpclog.SetLoggerV2(r.logs)
	started := time.Now()
	deadline := started.Add(cfg.timeout)
	phases := map[string]float64{}
	mark := func(name string, since time.Time) { phases[name] = time.Since(since).Seconds() }

	phase := time.Now()
	join := r.join(deadline)
	mark("join", phase)
	var hello *helloResult
	if cfg.hello && join.Joined > 0 {
		phase = time.Now()
		h := r.sayHello(deadline)
		hello = &h
		mark("hello", phase)
	}
	if cfg.pause {
		// Members whose streams the server still holds: what its memory is holding.
		held := 0
		for _, m := range r.members {
			if m.joined && atomic.LoadInt32(&m.ended) == 0 {
				held++
			}
		}
		line, _ := json.Marshal(map[string]interface{}{"event": "joined", "join": join, "held": held})
		fmt.Println(string(line))
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	}
	phase = time.Now()
	var data dataResult
	if cfg.senders > 0 && join.Joined > 0 {
		data = r.exchange(deadline)
	}
	mark("data", phase)

	atomic.StoreInt32(&r.stopping, 1)
	for _, m := range r.readers() {
		if m.joined {
			m.cancel()
		}
	}
	for _, m := range r.readers() {
		<-m.done
	}
	phase = time.Now()
	nonreaders := r.readNonreaders()
	mark("nonreaders", phase)
	out := r.summarise(join, hello, data, nonreaders)
	out.Phases = phases
	for _, m := range r.members {
		if m.cancel != nil {
			m.cancel()
		}
	}
	for _, conn := range r.conns {
		if conn != nil {
			conn.Close()
		}
	}
	if cfg.jsonOut {
		line, _ := json.Marshal(out)
		fmt.Println(string(line))
	} else {
		printText(out)
	}
	if join.Joined == 0 {
		os.Exit(1)
	}
}

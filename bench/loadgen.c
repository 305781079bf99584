/*
 * loadgen: a small epoll load generator for line protocols with 3-digit replies.
 *
 * Built by `make bench` with the machine's cc into build/bench/loadgen; driven by bench/run.py.
 *
 * Every connection reads the greeting (one reply) first, then sends the setup commands one at a
 * time, then runs the script: its commands in a cycle, with up to K requests in flight. A reply
 * is complete at its final line: `NNN text` (a space, or nothing, after the code), not `NNN-text`.
 * Latency is measured per request, from the write() that sent it to the read() that completed
 * its reply. Workers (processes) share the connections; after every connection is set up the
 * parent fixes one warm-up end / window end for all of them on CLOCK_MONOTONIC, prints
 * `window-start` and `window-end` lines (so the runner can read the server's CPU time at both
 * edges) and finally one JSON object with the totals of the window.
 *
 * Modes:
 *   default    run the script on C connections with K in flight each
 *   --sessions connect, greeting, script once (one request in flight), close; repeat. The unit is
 *              a session and its latency runs from connect() to the last reply.
 *   --hold     open C connections, read their greetings, print a JSON line, then hold them
 *              until standard input closes (idle capacity).
 *
 * Reply codes: every final reply of the script in the window is counted by its code (the JSON's
 * `codes` object); a 4yz/5yz code counts as a bad reply unless it is expected (`--allow CODE`,
 * e.g. 530 and 421 for a wrong-password storm).
 *
 * In a command, `$W` is replaced by the first word of the previous reply's text (e.g. the meter
 * id a `250 G12345 is yours to read` reply hands out; a reply's `@label` is skipped); scripts
 * using it need K = 1. `$N` is replaced by a number that grows with each command the connection
 * sends, for labels that are new each time (`@b$N BET RED 1`, docs/PROTOCOL.md 9a).
 *
 * Only connects to the address given (the runner always passes 127.0.0.1).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CMDS 16
#define MAX_K 256
#define RBUF 65536
#define WBUF 16384
#define WORD_MAX 64
#define MAX_CODE 600

/* Log-linear latency histogram over nanoseconds: 64 sub-buckets per power of two (~1.6%). */
#define SUB_BITS 6
#define SUB (1 << SUB_BITS)
#define NBUCKETS (64 * SUB)

typedef struct {
    uint64_t replies;      /* complete replies in the window (setup replies excluded) */
    uint64_t units;        /* script iterations (or sessions) completed in the window */
    uint64_t errors;       /* connect failures, resets, unexpected closes, timeouts */
    uint64_t bad_replies;  /* replies with a 4yz or 5yz code (in the window) */
    uint64_t setup_failures;
    uint64_t connected;    /* connections that got their greeting (hold mode) */
    uint64_t lat_count;
    uint64_t cpu_ns;       /* the worker's own CPU time (user+sys) during the window */
    uint64_t codes[MAX_CODE]; /* script replies in the window by code (0: not a code) */
    uint64_t hist[NBUCKETS];
} stats_t;

enum { ST_CONNECTING, ST_GREETING, ST_SETUP, ST_RUN, ST_DEAD };

typedef struct {
    int fd;
    int state;
    int idx;
    size_t rlen;
    char rbuf[RBUF];
    size_t wlen, woff;
    char wbuf[WBUF];
    uint64_t sent[MAX_K];
    int head, count;        /* FIFO of send times of the requests in flight */
    int next_cmd;           /* script index of the next command to send */
    int expect_cmd;         /* script index of the oldest reply awaited */
    int setup_pos;
    uint64_t iterations;    /* since the last (re)setup, for --reset-every */
    uint64_t started;       /* connect() time (session latency) */
    uint64_t deadline;      /* greeting/setup deadline */
    char word[WORD_MAX];
    uint64_t queued;        /* commands queued so far: $N */
    int epollout;
} conn_t;

/* ------------------------------------------------------------------ options */
static const char *opt_host = "127.0.0.1";
static int opt_port = 0;
static int opt_conns = 1;
static int opt_inflight = 1;
static int opt_workers = 1;
static double opt_warmup = 1.0, opt_duration = 5.0;
static char *script[MAX_CMDS];
static int nscript = 0;
static char *setup_cmds[MAX_CMDS];
static int nsetup = 0;
static int opt_sessions = 0, opt_hold = 0;
static long opt_reset_every = 0;
static int opt_connect_burst = 64;
static double opt_setup_timeout = 60.0;
static int opt_nodelay = 1;
static int opt_ack = 0;
static unsigned char allowed[MAX_CODE]; /* --allow: 4yz/5yz codes that are expected, not bad */

static int worker_id = 0;
static int quiet_errors = 0;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static void note(const char *fmt, ...) {
    if (quiet_errors >= 5) return;  /* a few diagnostics per worker, not a flood */
    quiet_errors++;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen[%d]: ", worker_id);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static int bucket_of(uint64_t v) {
    if (v < SUB) return (int)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - SUB_BITS;
    int b = (shift + 1) * SUB + (int)((v >> shift) & (SUB - 1));
    return b < NBUCKETS ? b : NBUCKETS - 1;
}

static double bucket_mid(int b) {
    if (b < SUB) return b;
    int shift = b / SUB - 1;
    uint64_t lo = ((uint64_t)(SUB + (b % SUB))) << shift;
    uint64_t hi = lo + (1ull << shift);
    return (lo + hi) / 2.0;
}

static double percentile(const stats_t *s, double p) {
    if (!s->lat_count) return 0;
    uint64_t rank = (uint64_t)(p * (double)s->lat_count);
    if (rank >= s->lat_count) rank = s->lat_count - 1;
    uint64_t seen = 0;
    for (int b = 0; b < NBUCKETS; b++) {
        seen += s->hist[b];
        if (seen > rank) return bucket_mid(b);
    }
    return bucket_mid(NBUCKETS - 1);
}

/* ------------------------------------------------------------------ worker */
static stats_t st;
static int epfd;
static conn_t **conns;
static int nconns;
static struct sockaddr_in addr;
static uint64_t t_start = UINT64_MAX, t_end = UINT64_MAX;
static int phase_run = 0;  /* 0: setting up, 1: warm-up/window */
static int pending_connects = 0;
static int waiting_to_connect = 0;
static int ready_count = 0;

static void epoll_set(conn_t *c, int out) {
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl mod: %s", strerror(errno));
    c->epollout = out;
}

static void start_connect(conn_t *c) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket: %s (raise the fd limit?)", strerror(errno));
    if (opt_nodelay) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    c->fd = fd;
    c->rlen = c->wlen = c->woff = 0;
    c->head = c->count = 0;
    c->next_cmd = c->expect_cmd = 0;
    c->setup_pos = 0;
    c->iterations = 0;
    c->word[0] = 0;
    c->started = now_ns();
    c->deadline = c->started + (uint64_t)(opt_setup_timeout * 1e9);
    c->state = ST_CONNECTING;
    pending_connects++;
    int r = connect(fd, (struct sockaddr *)&addr, sizeof addr);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    c->epollout = 1;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl add: %s", strerror(errno));
    if (r == 0) {
        c->state = ST_GREETING;
        epoll_set(c, 0);
    } else if (errno != EINPROGRESS) {
        die("connect: %s", strerror(errno));
    }
}

static void close_conn(conn_t *c) {
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    if (c->state == ST_CONNECTING || c->state == ST_GREETING || c->state == ST_SETUP)
        if (pending_connects > 0) pending_connects--;
    c->fd = -1;
    c->state = ST_DEAD;
}

static int in_window(uint64_t t) { return t >= t_start && t < t_end; }

/* Append a command (with $W substituted) and CRLF to the connection's output buffer. */
static void queue_cmd(conn_t *c, const char *cmd) {
    char line[1100];
    size_t n = 0;
    for (const char *p = cmd; *p && n < sizeof line - 3; p++) {
        if (p[0] == '$' && p[1] == 'W') {
            size_t w = strlen(c->word);
            if (n + w >= sizeof line - 3) break;
            memcpy(line + n, c->word, w);
            n += w;
            p++;
        } else if (p[0] == '$' && p[1] == 'N') {
            int w = snprintf(line + n, sizeof line - 3 - n, "%llu", (unsigned long long)c->queued);
            if (w < 0 || n + (size_t)w >= sizeof line - 3) break;
            n += (size_t)w;
            p++;
        } else {
            line[n++] = *p;
        }
    }
    line[n++] = '\r';
    line[n++] = '\n';
    c->queued++;
    if (c->wlen + n > WBUF) die("output buffer full (K too large for the command length?)");
    memcpy(c->wbuf + c->wlen, line, n);
    c->wlen += n;
}

/* Write what is queued; returns -1 if the connection failed. */
static int flush_out(conn_t *c) {
    while (c->woff < c->wlen) {
        ssize_t w = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
        if (w < 0) {
            if (errno == EAGAIN) {
                if (!c->epollout) epoll_set(c, 1);
                return 0;
            }
            return -1;
        }
        c->woff += (size_t)w;
    }
    c->woff = c->wlen = 0;
    if (c->epollout) epoll_set(c, 0);
    return 0;
}

/* Queue script commands until K are in flight. */
static void fill_pipeline(conn_t *c) {
    int k = opt_sessions ? 1 : opt_inflight;
    uint64_t t = 0;
    while (c->count < k) {
        if (opt_sessions && c->next_cmd >= nscript) break;  /* session: the script runs once */
        if (!t) t = now_ns();
        queue_cmd(c, script[c->next_cmd % nscript]);
        c->sent[(c->head + c->count) % MAX_K] = t;
        c->count++;
        c->next_cmd = opt_sessions ? c->next_cmd + 1 : (c->next_cmd + 1) % nscript;
    }
}

static void begin_setup(conn_t *c) {
    c->state = ST_SETUP;
    c->setup_pos = 0;
    if (nsetup == 0) {
        c->state = ST_RUN;
        return;
    }
    queue_cmd(c, setup_cmds[0]);
}

static void became_ready(conn_t *c) {
    (void)c;
    if (pending_connects > 0) pending_connects--;
    ready_count++;
}

static void take_word(conn_t *c, const char *line, size_t len) {
    /* line is `NNN text`; the word is the text's first word */
    size_t i = 4, n = 0;
    while (i < len && line[i] == ' ') i++;
    if (i < len && line[i] == '@') { /* a labelled reply: the word after the label */
        while (i < len && line[i] != ' ') i++;
        while (i < len && line[i] == ' ') i++;
    }
    while (i < len && line[i] != ' ' && n < WORD_MAX - 1) c->word[n++] = line[i++];
    c->word[n] = 0;
}

/* One complete reply arrived on c at time t, final line `line`. Returns -1 to drop the conn. */
static int on_reply(conn_t *c, const char *line, size_t len, uint64_t t) {
    int code = 0;
    if (len >= 3 && line[0] >= '1' && line[0] <= '5')
        code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    switch (c->state) {
    case ST_GREETING:
        if (code != 220) {
            note("greeting was not 220: %.*s", (int)(len > 80 ? 80 : len), line);
            st.setup_failures++;
            return -1;
        }
        if (opt_hold) {
            st.connected++;
            became_ready(c);
            c->state = ST_RUN;
            return 0;
        }
        if (opt_sessions) {
            c->state = ST_RUN;
            fill_pipeline(c);
            return 0;
        }
        begin_setup(c);
        if (c->state == ST_RUN) {
            became_ready(c);
            if (phase_run) fill_pipeline(c);
        }
        return 0;
    case ST_SETUP:
        if (code == 0 || code >= 400) {
            note("setup command '%s' got: %.*s", setup_cmds[c->setup_pos], (int)(len > 120 ? 120 : len), line);
            st.setup_failures++;
            return -1;
        }
        take_word(c, line, len);
        if (++c->setup_pos < nsetup) {
            queue_cmd(c, setup_cmds[c->setup_pos]);
            return 0;
        }
        c->state = ST_RUN;
        c->iterations = 0;
        if (!phase_run) became_ready(c);
        else fill_pipeline(c);
        return 0;
    case ST_RUN: {
        if (c->count <= 0) {
            note("unexpected reply: %.*s", (int)(len > 80 ? 80 : len), line);
            return -1;
        }
        uint64_t sent = c->sent[c->head];
        c->head = (c->head + 1) % MAX_K;
        c->count--;
        int cmd = c->expect_cmd;
        c->expect_cmd = opt_sessions ? cmd + 1 : (cmd + 1) % nscript;
        take_word(c, line, len);
        int counted = in_window(t);
        if (counted) {
            st.replies++;
            st.codes[code]++;
            if (code == 0 || (code >= 400 && !allowed[code])) {
                st.bad_replies++;
                if (st.bad_replies <= 3) note("reply %.*s to '%s'", (int)(len > 100 ? 100 : len), line, script[cmd % nscript]);
            }
            if (!opt_sessions) {
                st.hist[bucket_of(t - sent)]++;
                st.lat_count++;
            }
        }
        if (opt_sessions) {
            if (cmd + 1 >= nscript) {  /* the session's last reply */
                if (counted) {
                    st.units++;
                    st.hist[bucket_of(t - c->started)]++;
                    st.lat_count++;
                }
                close_conn(c);
                if (t < t_end) start_connect(c);
                return 1;
            }
            fill_pipeline(c);
            return 0;
        }
        if (cmd == nscript - 1) {
            if (counted) st.units++;
            c->iterations++;
            if (opt_reset_every && c->iterations >= (uint64_t)opt_reset_every) {
                begin_setup(c);  /* K == 1: nothing else is in flight */
                return 0;
            }
        }
        if (t < t_end) fill_pipeline(c);
        return 0;
    }
    default:
        return -1;
    }
}

static void conn_failed(conn_t *c, const char *why) {
    uint64_t t = now_ns();
    st.errors++;  /* at any time: setup, warm-up or window */
    note("connection %d: %s", c->idx, why);
    int was_ready = (c->state == ST_RUN);
    close_conn(c);
    if (!phase_run) {
        /* a connection lost before the run counts as done (and failed) so the run can go on */
        if (!was_ready) ready_count++;
        return;
    }
    if (t < t_end && !opt_hold) start_connect(c);
}

/* Read what is there and handle every complete reply. */
static void on_readable(conn_t *c) {
    for (;;) {
        size_t room = RBUF - c->rlen;
        ssize_t r = read(c->fd, c->rbuf + c->rlen, room);
        if (r < 0) {
            if (errno == EAGAIN) break;
            conn_failed(c, strerror(errno));
            return;
        }
        if (r == 0) {
            conn_failed(c, "closed by the server");
            return;
        }
        uint64_t t = now_ns();
        c->rlen += (size_t)r;
        size_t pos = 0;
        for (;;) {
            char *nl = memchr(c->rbuf + pos, '\n', c->rlen - pos);
            if (!nl) break;
            size_t end = (size_t)(nl - c->rbuf);
            size_t len = end - pos;
            const char *line = c->rbuf + pos;
            if (len && line[len - 1] == '\r') len--;
            pos = end + 1;
            int final = !(len >= 4 && line[3] == '-' && line[0] >= '1' && line[0] <= '5');
            if (final) {
                int rc = on_reply(c, line, len, t);
                if (rc < 0) {
                    conn_failed(c, "protocol");
                    return;
                }
                if (rc > 0) return;  /* session finished: the connection was replaced */
            }
        }
        if (pos < c->rlen) memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
        c->rlen -= pos;
        if (c->rlen == RBUF) {
            conn_failed(c, "reply line too long");
            return;
        }
        if ((size_t)r < room) break;  /* drained */
    }
    if (c->wlen && flush_out(c) < 0) conn_failed(c, "write failed");
}

static void on_event(conn_t *c, uint32_t events) {
    if (c->state == ST_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            conn_failed(c, strerror(err));
            return;
        }
        c->state = ST_GREETING;
        epoll_set(c, 0);
        if (!(events & EPOLLIN)) return;
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        on_readable(c);
        if (c->state == ST_DEAD || c->fd < 0) return;
    }
    if ((events & EPOLLOUT) && c->wlen) {
        if (flush_out(c) < 0) conn_failed(c, "write failed");
    }
}

static void check_deadlines(uint64_t t) {
    for (int i = 0; i < nconns; i++) {
        conn_t *c = conns[i];
        if ((c->state == ST_CONNECTING || c->state == ST_GREETING || c->state == ST_SETUP) && t > c->deadline) {
            st.setup_failures++;
            conn_failed(c, "no greeting or setup reply in time");
        }
    }
}

static void connect_some(void) {
    /* Open connections in bursts of at most opt_connect_burst awaiting their greeting. */
    for (int i = 0; i < nconns && waiting_to_connect > 0; i++) {
        conn_t *c = conns[i];
        if (c->state != ST_DEAD || c->fd != -2) continue;
        if (pending_connects >= opt_connect_burst) break;
        waiting_to_connect--;
        start_connect(c);
    }
}

static int epoll_round(int timeout_ms) {
    struct epoll_event evs[512];
    int n = epoll_wait(epfd, evs, 512, timeout_ms);
    if (n < 0) {
        if (errno == EINTR) return 0;
        die("epoll_wait: %s", strerror(errno));
    }
    for (int i = 0; i < n; i++) on_event(evs[i].data.ptr, evs[i].events);
    return n;
}

static uint64_t self_cpu_ns(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ull +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ull;
}

static int write_all(int fd, const void *p, size_t n) {
    const char *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, void *p, size_t n) {
    char *b = p;
    while (n) {
        ssize_t r = read(fd, b, n);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

/* A worker: its share of connections; `up` reports to the parent, `down` brings the times. */
static void worker(int id, int share, int up, int down) {
    worker_id = id;
    nconns = share;
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) die("epoll_create1: %s", strerror(errno));
    conns = calloc((size_t)share, sizeof *conns);
    for (int i = 0; i < share; i++) {
        conns[i] = calloc(1, sizeof(conn_t));
        conns[i]->idx = i;
        conns[i]->fd = -2;  /* not opened yet */
        conns[i]->state = ST_DEAD;
    }
    waiting_to_connect = share;
    /* setup: connect everything, greetings and setup commands (sessions connect in the run) */
    uint64_t last_check = now_ns();
    if (opt_sessions) ready_count = share;
    while (ready_count < share) {
        connect_some();
        epoll_round(20);
        uint64_t t = now_ns();
        if (t - last_check > 100000000ull) {
            check_deadlines(t);
            last_check = t;
        }
    }
    char byte = 'R';
    if (write_all(up, &byte, 1) < 0) die("worker: parent gone");
    if (opt_hold) {
        if (write_all(up, &st, sizeof st) < 0) die("worker: parent gone");
        /* hold until the parent says stop (it closes `down`) */
        struct pollfd p = {.fd = down, .events = POLLIN};
        for (;;) {
            int n = epoll_round(50);
            (void)n;
            if (poll(&p, 1, 0) > 0) break;
        }
        if (write_all(up, &st, sizeof st) < 0) die("worker: parent gone");
        _exit(0);
    }
    uint64_t times[2];
    if (read_all(down, times, sizeof times) < 0) die("worker: no start time");
    t_start = times[0];
    t_end = times[1];
    phase_run = 1;
    for (int i = 0; i < nconns; i++) {
        conn_t *c = conns[i];
        if (c->state == ST_RUN) {
            fill_pipeline(c);
            if (flush_out(c) < 0) conn_failed(c, "write failed");
        } else if (c->state == ST_DEAD && opt_sessions) {
            start_connect(c);
        }
    }
    if (opt_sessions)
        for (int i = 0; i < nconns; i++)
            if (conns[i]->state == ST_RUN && conns[i]->count == 0) fill_pipeline(conns[i]);
    uint64_t cpu0 = 0;
    int cpu_started = 0;
    for (;;) {
        uint64_t t = now_ns();
        if (!cpu_started && t >= t_start) {
            cpu0 = self_cpu_ns();
            cpu_started = 1;
        }
        if (t >= t_end) break;
        uint64_t until = cpu_started ? t_end : t_start;
        int ms = (int)((until - t) / 1000000ull) + 1;
        epoll_round(ms < 50 ? ms : 50);
        if (opt_sessions) {
            uint64_t t2 = now_ns();
            for (int i = 0; i < nconns; i++) {
                conn_t *c = conns[i];
                if (c->state != ST_DEAD && c->state != ST_RUN && t2 > c->deadline) conn_failed(c, "session timed out");
            }
        }
    }
    st.cpu_ns = self_cpu_ns() - cpu0;
    if (write_all(up, &st, sizeof st) < 0) die("worker: parent gone");
    /* keep the connections open until the parent lets go: the runner reads the server's
       per-thread counters after window-end, and a thread-per-connection server loses a
       thread's counters when its connection closes */
    char drop;
    while (read(down, &drop, 1) > 0) {}
    _exit(0);
}

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen --port P [--host 127.0.0.1] [-c CONNS] [-k INFLIGHT] [-w WORKERS]\n"
            "               [--warmup S] [--duration S] [--cmd CMD]... [--setup CMD]...\n"
            "               [--reset-every N] [--sessions | --hold] [--connect-burst N] [--ack]\n"
            "               [--allow CODE]...\n");
    exit(2);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
#define NEXT() (i + 1 < argc ? argv[++i] : (usage(), (char *)0))
        if (!strcmp(a, "--host")) opt_host = NEXT();
        else if (!strcmp(a, "--port")) opt_port = atoi(NEXT());
        else if (!strcmp(a, "-c")) opt_conns = atoi(NEXT());
        else if (!strcmp(a, "-k")) opt_inflight = atoi(NEXT());
        else if (!strcmp(a, "-w")) opt_workers = atoi(NEXT());
        else if (!strcmp(a, "--warmup")) opt_warmup = atof(NEXT());
        else if (!strcmp(a, "--duration")) opt_duration = atof(NEXT());
        else if (!strcmp(a, "--cmd")) {
            if (nscript == MAX_CMDS) usage();
            script[nscript++] = NEXT();
        } else if (!strcmp(a, "--setup")) {
            if (nsetup == MAX_CMDS) usage();
            setup_cmds[nsetup++] = NEXT();
        } else if (!strcmp(a, "--reset-every")) opt_reset_every = atol(NEXT());
        else if (!strcmp(a, "--sessions")) opt_sessions = 1;
        else if (!strcmp(a, "--hold")) opt_hold = 1;
        else if (!strcmp(a, "--connect-burst")) opt_connect_burst = atoi(NEXT());
        else if (!strcmp(a, "--setup-timeout")) opt_setup_timeout = atof(NEXT());
        else if (!strcmp(a, "--no-nodelay")) opt_nodelay = 0;
        else if (!strcmp(a, "--ack")) opt_ack = 1;
        else if (!strcmp(a, "--allow")) {
            int code = atoi(NEXT());
            if (code < 100 || code >= MAX_CODE) usage();
            allowed[code] = 1;
        }
        else usage();
    }
    if (opt_port <= 0 || opt_conns < 1 || opt_inflight < 1 || opt_inflight > MAX_K || opt_workers < 1) usage();
    if (nscript == 0) script[nscript++] = "NOOP";
    if (opt_workers > opt_conns) opt_workers = opt_conns;
    if (opt_reset_every && opt_inflight != 1) die("--reset-every needs -k 1");
    for (int i = 0; i < nscript; i++)
        if (strstr(script[i], "$W") && opt_inflight != 1) die("$W needs -k 1");
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)opt_port);
    if (inet_pton(AF_INET, opt_host, &addr.sin_addr) != 1) die("bad host %s", opt_host);

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);

    int nw = opt_hold ? 1 : opt_workers;
    int ups[64], downs[64];
    pid_t pids[64];
    if (nw > 64) die("at most 64 workers");
    for (int w = 0; w < nw; w++) {
        int up[2], down[2];
        if (pipe(up) < 0 || pipe(down) < 0) die("pipe: %s", strerror(errno));
        int share = opt_conns / nw + (w < opt_conns % nw ? 1 : 0);
        pid_t pid = fork();
        if (pid < 0) die("fork: %s", strerror(errno));
        if (pid == 0) {
            close(up[0]);
            close(down[1]);
            for (int j = 0; j < w; j++) {
                close(ups[j]);
                close(downs[j]);
            }
            worker(w, share, up[1], down[0]);
        }
        close(up[1]);
        close(down[0]);
        ups[w] = up[0];
        downs[w] = down[1];
        pids[w] = pid;
    }
    uint64_t t0 = now_ns();
    for (int w = 0; w < nw; w++) {
        char byte;
        if (read_all(ups[w], &byte, 1) < 0) die("worker %d failed during setup", w);
    }
    double setup_s = (now_ns() - t0) / 1e9;
    stats_t total;
    memset(&total, 0, sizeof total);
    if (opt_hold) {
        stats_t s;
        if (read_all(ups[0], &s, sizeof s) < 0) die("worker gone");
        printf("{\"mode\": \"hold\", \"ready\": true, \"connected\": %llu, \"errors\": %llu, "
               "\"setup_failures\": %llu, \"setup_s\": %.3f}\n",
               (unsigned long long)s.connected, (unsigned long long)s.errors,
               (unsigned long long)s.setup_failures, setup_s);
        fflush(stdout);
        char buf[256];
        while (read(0, buf, sizeof buf) > 0) {}
        close(downs[0]);  /* POLLHUP on the worker's end */
        if (read_all(ups[0], &s, sizeof s) < 0) die("worker gone");
        waitpid(pids[0], NULL, 0);
        printf("{\"mode\": \"hold\", \"connected\": %llu, \"errors\": %llu, \"setup_failures\": %llu}\n",
               (unsigned long long)s.connected, (unsigned long long)s.errors,
               (unsigned long long)s.setup_failures);
        return 0;
    }
    uint64_t times[2];
    times[0] = now_ns() + (uint64_t)(opt_warmup * 1e9);
    times[1] = times[0] + (uint64_t)(opt_duration * 1e9);
    for (int w = 0; w < nw; w++)
        if (write_all(downs[w], times, sizeof times) < 0) die("worker %d gone", w);
    struct timespec ts = {.tv_sec = (time_t)(times[0] / 1000000000ull), .tv_nsec = (long)(times[0] % 1000000000ull)};
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    printf("window-start\n");
    fflush(stdout);
    ts.tv_sec = (time_t)(times[1] / 1000000000ull);
    ts.tv_nsec = (long)(times[1] % 1000000000ull);
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    printf("window-end\n");
    fflush(stdout);
    if (opt_ack) {  /* --ack: wait for a line on stdin before the connections close */
        char buf[64];
        if (read(0, buf, sizeof buf) < 0) {}
    }
    for (int w = 0; w < nw; w++) {
        stats_t s;
        if (read_all(ups[w], &s, sizeof s) < 0) die("worker %d gone", w);
        total.replies += s.replies;
        total.units += s.units;
        total.errors += s.errors;
        total.bad_replies += s.bad_replies;
        total.setup_failures += s.setup_failures;
        total.lat_count += s.lat_count;
        total.cpu_ns += s.cpu_ns;
        for (int b = 0; b < NBUCKETS; b++) total.hist[b] += s.hist[b];
        for (int k = 0; k < MAX_CODE; k++) total.codes[k] += s.codes[k];
    }
    for (int w = 0; w < nw; w++) close(downs[w]);
    for (int w = 0; w < nw; w++) waitpid(pids[w], NULL, 0);
    double cpu = total.cpu_ns / 1e9;
    double elapsed_all = (now_ns() - t0) / 1e9;
    printf("{\"mode\": \"%s\", \"connections\": %d, \"inflight\": %d, \"workers\": %d, \"window_s\": %.3f, "
           "\"replies\": %llu, \"units\": %llu, \"replies_per_s\": %.1f, \"units_per_s\": %.1f, "
           "\"p50_ms\": %.4f, \"p90_ms\": %.4f, \"p99_ms\": %.4f, \"p999_ms\": %.4f, \"errors\": %llu, "
           "\"bad_replies\": %llu, \"setup_failures\": %llu, \"setup_s\": %.3f, "
           "\"loadgen_cpu_s\": %.3f, \"loadgen_elapsed_s\": %.3f, \"codes\": {",
           opt_sessions ? "sessions" : "requests", opt_conns, opt_sessions ? 1 : opt_inflight, nw, opt_duration,
           (unsigned long long)total.replies, (unsigned long long)total.units,
           total.replies / opt_duration, total.units / opt_duration,
           percentile(&total, 0.50) / 1e6, percentile(&total, 0.90) / 1e6,
           percentile(&total, 0.99) / 1e6, percentile(&total, 0.999) / 1e6,
           (unsigned long long)total.errors, (unsigned long long)total.bad_replies,
           (unsigned long long)total.setup_failures, setup_s, cpu, elapsed_all);
    const char *sep = "";
    for (int k = 0; k < MAX_CODE; k++) {
        if (!total.codes[k]) continue;
        printf("%s\"%d\": %llu", sep, k, (unsigned long long)total.codes[k]);
        sep = ", ";
    }
    printf("}}\n");
    return 0;
}

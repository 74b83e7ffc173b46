/*
 * chat_load: the IRC fan-out load generator of bench/chat.sh (one thread, epoll).
 *
 *   chat_load -p PORT -n RECEIVERS -m MESSAGES [-w WINDOW] [-t TIMEOUT_S] [-s SERVER_PID]
 *             [-o NAME:PASSWORD] [-b OUTSTANDING] [-c CHANNEL]
 *
 * Connects RECEIVERS plain IRC clients to 127.0.0.1:PORT (at most OUTSTANDING, default 8,
 * between connect and the end of their JOIN at a time), registers each (NICK/USER) and joins
 * it to CHANNEL (default #bench). With -s it reads the PSS of SERVER_PID (and its children)
 * before the first connection and again once every receiver has joined and the server has been
 * idle for a second: the memory per idle client. Then one more client, the sender, registers
 * (with -o it becomes an IRC operator and sets user mode +F, ngircd's relaxed flood
 * protection), joins, and sends MESSAGES lines `PRIVMSG CHANNEL :SEQ SEND_NS pad` as fast as
 * the server takes them: at most WINDOW (default 64) messages ahead of the slowest receiver,
 * so no server's per-client queue limits come into play. SEND_NS is CLOCK_MONOTONIC when the
 * line is written; every receiver notes the time it reads it, all in this one process.
 *
 * Prints one line on stdout:
 *   n=.. m=.. deliveries=.. expected=.. secs=.. rate=.. p50_ms=.. p99_ms=.. max_ms=..
 *   setup_secs=.. pss_before_kib=.. pss_idle_kib=.. kib_per_client=.. dropped=.. order_errors=..
 *   window=.. server_cpu_s=.. load_cpu_s=..
 * secs runs from the first message written to the last delivery read; rate = deliveries/secs.
 * server_cpu_s and load_cpu_s are the CPU seconds the server (with -s) and this program used
 * from the first message to the last delivery. A receiver the server disconnects counts in dropped (its missing deliveries are left out);
 * the exit status is 1 if any receiver was dropped, a line came out of order or the timeout
 * passed, 2 on usage errors.
 *
 * Build: cc -O2 -Wall -o chat_load chat_load.c
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUFSZ 16384

enum { S_CONNECTING, S_REGISTERING, S_JOINING, S_JOINED, S_DEAD };

struct conn {
    int fd, id, state;
    int is_sender;
    size_t len;            /* bytes in buf */
    long long next_seq;    /* next sequence number expected (receivers) */
    long long got;         /* messages received */
    char *out;             /* pending output (sender) */
    size_t out_len, out_cap;
    char buf[BUFSZ];
};

static int port, nrecv, nmsg, window = 64, timeout_s = 120, outstanding = 8;
static long server_pid;
static const char *oper, *channel = "#bench";
static int ep;
static struct conn **conns;
static struct conn *sender;
static int sender_ready;       /* 0 registering, 1 oper sent, 2 joined+sync sent, 3 ready */
static int joined, pending, started, dropped, order_errors;
static long long *cnt;         /* per sequence: receivers that have it (or were dropped) */
static long long done_upto;    /* every sequence below it reached every receiver */
static long long next_send, deliveries;
static int64_t *lat;
static int64_t t_first_send, t_last_recv;
static long long srv_ticks0, srv_ticks1;
static int64_t self_cpu0, self_cpu1;

static int64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static long long proc_ticks(long pid)   /* utime + stime of the process */
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    unsigned long long ut = 0, st = 0;
    /* after ") ": state(3) ... utime is field 14, stime 15 */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) return -1;
    return (long long)(ut + st);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "chat_load: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static long pss_kib(long pid)
{
    char path[64], line[256];
    long total = 0;
    snprintf(path, sizeof path, "/proc/%ld/smaps_rollup", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f)) {
        long v;
        if (sscanf(line, "Pss: %ld", &v) == 1) { total += v; break; }
    }
    fclose(f);
    /* children (a server that forks workers) */
    snprintf(path, sizeof path, "/proc/%ld/task/%ld/children", pid, pid);
    f = fopen(path, "r");
    if (f) {
        long c;
        while (fscanf(f, "%ld", &c) == 1) {
            long v = pss_kib(c);
            if (v > 0) total += v;
        }
        fclose(f);
    }
    return total;
}

static void send_raw(struct conn *c, const char *s, size_t n)
{
    if (c->state == S_DEAD) return;
    if (c->out_len == 0) {
        ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) die("send on client %d: %s", c->id, strerror(errno));
            w = 0;
        }
        s += w;
        n -= (size_t)w;
        if (n == 0) return;
    }
    if (c->out_len + n > c->out_cap) {
        c->out_cap = (c->out_len + n) * 2;
        c->out = realloc(c->out, c->out_cap);
        if (!c->out) die("out of memory");
    }
    memcpy(c->out + c->out_len, s, n);
    c->out_len += n;
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void sendf(struct conn *c, const char *fmt, ...)
{
    char line[600];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    send_raw(c, line, (size_t)n);
}

static void flush_out(struct conn *c)
{
    while (c->out_len) {
        ssize_t w = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            die("send on client %d: %s", c->id, strerror(errno));
        }
        memmove(c->out, c->out + w, c->out_len - (size_t)w);
        c->out_len -= (size_t)w;
    }
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static struct conn *open_conn(int id, int is_sender)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c) die("out of memory");
    c->id = id;
    c->is_sender = is_sender;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) die("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS)
        die("connect to 127.0.0.1:%d: %s", port, strerror(errno));
    c->state = S_CONNECTING;
    struct epoll_event ev = { .events = EPOLLOUT | EPOLLIN, .data.ptr = c };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));
    return c;
}

static void fill_window(void)
{
    if (!started) return;
    char line[256];
    while (next_send < nmsg && next_send - done_upto < window) {
        int64_t t = now_ns();
        if (next_send == 0) t_first_send = t;
        int n = snprintf(line, sizeof line, "PRIVMSG %s :%lld %lld fan-out benchmark line\r\n",
                         channel, next_send, (long long)t);
        send_raw(sender, line, (size_t)n);
        next_send++;
    }
}

static void advance(void)
{
    long long before = done_upto;
    while (done_upto < nmsg && cnt[done_upto] >= nrecv) done_upto++;
    if (done_upto != before) fill_window();
}

static void mark_dead(struct conn *c, const char *why)
{
    if (c->state == S_DEAD) return;
    if (c->is_sender) die("the sender was disconnected: %s", why);
    int was = c->state;
    c->state = S_DEAD;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    dropped++;
    fprintf(stderr, "chat_load: receiver %d disconnected: %s\n", c->id, why);
    if (was != S_JOINED) { pending--; return; }
    joined--;
    for (long long s = c->got; s < nmsg; s++) cnt[s]++;  /* it will never count; let the window pass */
    advance();
}

static void on_message(struct conn *c, const char *text, int64_t t)
{
    char *end;
    long long seq = strtoll(text, &end, 10);
    long long ts = strtoll(end, NULL, 10);
    if (seq < 0 || seq >= nmsg) { order_errors++; return; }
    if (seq != c->next_seq) order_errors++;
    c->next_seq = seq + 1;
    c->got++;
    lat[deliveries++] = t - ts;
    t_last_recv = t;
    cnt[seq]++;
    if (seq == done_upto) advance();
}

static void on_line(struct conn *c, char *line, int64_t t)
{
    /* ":prefix CMD args" */
    char *p = line;
    if (*p == '@') { p = strchr(p, ' '); if (!p) return; p++; }
    if (*p == ':') { p = strchr(p, ' '); if (!p) return; p++; }
    if (!strncmp(p, "PING ", 5)) { sendf(c, "PONG %s\r\n", p + 5); return; }
    if (!strncmp(p, "ERROR", 5)) { mark_dead(c, line); return; }
    if (!strncmp(p, "PRIVMSG ", 8)) {
        char *q = strstr(p, " :");
        if (q && !c->is_sender) on_message(c, q + 2, t);
        return;
    }
    if (!strncmp(p, "001 ", 4)) {
        if (c->is_sender && oper) {
            char name[128];
            snprintf(name, sizeof name, "%s", oper);
            char *colon = strchr(name, ':');
            if (!colon) die("-o wants NAME:PASSWORD");
            *colon = 0;
            sendf(c, "OPER %s %s\r\n", name, colon + 1);
            sender_ready = 1;
        } else {
            c->state = S_JOINING;
            sendf(c, "JOIN %s\r\n", channel);
        }
        return;
    }
    if (!strncmp(p, "381 ", 4) && c->is_sender) {   /* now an operator */
        sendf(c, "MODE s%d +F\r\nJOIN %s\r\n", c->id, channel);
        c->state = S_JOINING;
        return;
    }
    if (!strncmp(p, "366 ", 4)) {
        if (c->is_sender) {
            sendf(c, "PING :chat-load-sync\r\n");
            sender_ready = 2;
        } else if (c->state == S_JOINING) {
            c->state = S_JOINED;
            joined++;
            pending--;
        }
        return;
    }
    if (!strncmp(p, "PONG ", 5) && c->is_sender && strstr(p, "chat-load-sync") && sender_ready == 2) {
        c->state = S_JOINED;
        sender_ready = 3;
        return;
    }
    if (c->is_sender && (!strncmp(p, "491 ", 4) || !strncmp(p, "464 ", 4) || !strncmp(p, "481 ", 4) ||
                         !strncmp(p, "501 ", 4) || !strncmp(p, "404 ", 4)))
        die("the sender got: %s", line);
    if (!strncmp(p, "433 ", 4) || !strncmp(p, "432 ", 4) || !strncmp(p, "451 ", 4) || !strncmp(p, "405 ", 4) ||
        !strncmp(p, "471 ", 4))
        die("client %d got: %s", c->id, line);
}

static void on_readable(struct conn *c)
{
    for (;;) {
        ssize_t r = recv(c->fd, c->buf + c->len, BUFSZ - 1 - c->len, 0);
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            mark_dead(c, strerror(errno));
            return;
        }
        if (r == 0) { mark_dead(c, "end of stream"); return; }
        int64_t t = now_ns();
        c->len += (size_t)r;
        c->buf[c->len] = 0;
        char *start = c->buf, *nl;
        while ((nl = memchr(start, '\n', c->len - (size_t)(start - c->buf)))) {
            *nl = 0;
            if (nl > start && nl[-1] == '\r') nl[-1] = 0;
            on_line(c, start, t);
            if (c->state == S_DEAD) return;
            start = nl + 1;
        }
        c->len -= (size_t)(start - c->buf);
        memmove(c->buf, start, c->len);
        if (c->len >= BUFSZ - 1) die("client %d: a line longer than %d bytes", c->id, BUFSZ);
    }
}

static void on_event(struct conn *c, uint32_t evs)
{
    if (c->state == S_DEAD) return;
    if (c->state == S_CONNECTING && (evs & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) die("connect to 127.0.0.1:%d: %s", port, strerror(err));
        c->state = S_REGISTERING;
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        if (c->is_sender) sendf(c, "NICK s%d\r\nUSER s%d 0 * :sender\r\n", c->id, c->id);
        else sendf(c, "NICK r%d\r\nUSER r%d 0 * :receiver\r\n", c->id, c->id);
        return;
    }
    if (evs & EPOLLOUT) flush_out(c);
    if (evs & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
}

static void loop_once(int ms)
{
    struct epoll_event evs[512];
    int n = epoll_wait(ep, evs, 512, ms);
    if (n < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
    for (int i = 0; i < n; i++) on_event(evs[i].data.ptr, evs[i].events);
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double pct_ms(double p)
{
    if (!deliveries) return 0;
    long long i = (long long)(p * (double)(deliveries - 1) + 0.5);
    return (double)lat[i] / 1e6;
}

int main(int argc, char **argv)
{
    int opt;
    while ((opt = getopt(argc, argv, "p:n:m:w:t:s:o:b:c:")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 'n': nrecv = atoi(optarg); break;
        case 'm': nmsg = atoi(optarg); break;
        case 'w': window = atoi(optarg); break;
        case 't': timeout_s = atoi(optarg); break;
        case 's': server_pid = atol(optarg); break;
        case 'o': oper = optarg; break;
        case 'b': outstanding = atoi(optarg); break;
        case 'c': channel = optarg; break;
        default:
            fprintf(stderr, "usage: chat_load -p PORT -n RECEIVERS -m MESSAGES [-w WINDOW] [-t TIMEOUT_S] "
                            "[-s SERVER_PID] [-o NAME:PASSWORD] [-b OUTSTANDING] [-c CHANNEL]\n");
            return 2;
        }
    }
    if (port <= 0 || nrecv <= 0 || nmsg <= 0 || window <= 0 || outstanding <= 0 || timeout_s <= 0) {
        fprintf(stderr, "chat_load: -p, -n and -m are required and positive\n");
        return 2;
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)nrecv + 64) {
        rl.rlim_cur = (rlim_t)nrecv + 64;
        if (rl.rlim_max < rl.rlim_cur) rl.rlim_max = rl.rlim_cur;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) die("cannot raise the open-file limit to %d", nrecv + 64);
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    conns = calloc((size_t)nrecv, sizeof *conns);
    cnt = calloc((size_t)nmsg, sizeof *cnt);
    lat = malloc((size_t)nrecv * (size_t)nmsg * sizeof *lat);
    if (!conns || !cnt || !lat) die("out of memory");

    int64_t deadline = now_ns() + (int64_t)timeout_s * 1000000000;
    long pss_before = server_pid ? pss_kib(server_pid) : -1;
    int64_t t_setup = now_ns();

    /* receivers: connect, register, join, OUTSTANDING at a time */
    int opened = 0;
    while (joined + dropped < nrecv) {
        while (opened < nrecv && pending < outstanding) {
            conns[opened] = open_conn(opened, 0);
            opened++;
            pending++;
        }
        loop_once(100);
        if (now_ns() > deadline) die("timeout: %d of %d receivers joined", joined, nrecv);
    }
    double setup_secs = (double)(now_ns() - t_setup) / 1e9;

    /* idle for a second (answering PINGs), then the server's memory */
    int64_t until = now_ns() + 1000000000;
    while (now_ns() < until) loop_once(50);
    long pss_idle = server_pid ? pss_kib(server_pid) : -1;

    /* the sender */
    sender = open_conn(nrecv, 1);
    while (sender_ready < 3) {
        loop_once(100);
        if (now_ns() > deadline) die("timeout: the sender did not get ready (stage %d)", sender_ready);
    }
    /* receivers see the sender's JOIN first; give them a moment */
    until = now_ns() + 200000000;
    while (now_ns() < until) loop_once(20);

    started = 1;
    if (server_pid) srv_ticks0 = proc_ticks(server_pid);
    self_cpu0 = cpu_ns();
    fill_window();
    long long expected = (long long)(nrecv - dropped) * nmsg;
    while (done_upto < nmsg) {
        loop_once(100);
        if (now_ns() > deadline) {
            fprintf(stderr, "chat_load: timeout: %lld of %lld deliveries, %lld of %d messages sent\n",
                    deliveries, expected, next_send, nmsg);
            break;
        }
    }
    self_cpu1 = cpu_ns();
    if (server_pid) srv_ticks1 = proc_ticks(server_pid);
    expected = (long long)nrecv * nmsg;
    double secs = t_last_recv > t_first_send ? (double)(t_last_recv - t_first_send) / 1e9 : 0;
    qsort(lat, (size_t)deliveries, sizeof *lat, cmp64);
    printf("n=%d m=%d deliveries=%lld expected=%lld secs=%.4f rate=%.0f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f "
           "setup_secs=%.2f pss_before_kib=%ld pss_idle_kib=%ld kib_per_client=%.2f dropped=%d order_errors=%d "
           "window=%d server_cpu_s=%.2f load_cpu_s=%.2f\n",
           nrecv, nmsg, deliveries, expected, secs, secs > 0 ? (double)deliveries / secs : 0,
           pct_ms(0.5), pct_ms(0.99), pct_ms(1.0), setup_secs, pss_before, pss_idle,
           (pss_before >= 0 && pss_idle >= 0) ? (double)(pss_idle - pss_before) / nrecv : -1.0,
           dropped, order_errors, window,
           server_pid ? (double)(srv_ticks1 - srv_ticks0) / (double)sysconf(_SC_CLK_TCK) : -1.0,
           (double)(self_cpu1 - self_cpu0) / 1e9);
    fflush(stdout);
    return (dropped || order_errors || deliveries != expected) ? 1 : 0;
}

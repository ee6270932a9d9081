# cgibox's launcher: a small long-lived process that starts every script run for the server, so the big Node process
# is never forked per request (Apache mod_cgid's design). It decides nothing: the server sends a run plan and the
# launcher carries it out between fork and exec, in this order: session, stdio, cgroups, rlimits, groups, gid, uid,
# parent-death signal, no-new-privs, cwd, signal dispositions, close every other descriptor, exec.
#
# Protocol (all integers big-endian):
# - stdin (from the server): one line `{"secret": hex, "zygoteMaxForks": n}` at start, then one JSON line per kill:
#   `{"kill": id, "signal": n}` (the run's direct child and its process group). EOF: kill every run, exit.
# - stdout (to the server): JSON lines `{"ready": true, ...}`, `{"id", "pid"}` once forked, `{"id", "error", "stage"}`
#   when setup or exec failed in the child, `{"id", "exit", "signal"}` once the launcher reaped it.
# - argv: the socket's directory (0700) and its name in it.
# - each run opens two connections to the unix socket:
#   A: b"CGBR" + 32-byte launcher secret + u32 length + JSON plan; then the request body. It becomes the run's
#      stdin (fd 0) and stderr (fd 2): the server writes the body and reads stderr on it.
#   B: b"CGBO" + 16-byte run token (from the plan): it becomes the run's stdout (fd 1, or fd 3 with /dev/null on 1).
#   Stdout gets a connection of its own so that a script that closes it and lingers ends its response at once.
# The launcher reads exactly the header of each connection, never a byte of the body.
#
# Warm Python: a plan with "warm": {"interpreter", "script"} may run in a zygote instead of by exec: a python3 of that
# interpreter (this file with --zygote), started once, past its interpreter start-up, that forks per run. The child
# takes the same steps as an exec'd run, then becomes the script: a fresh os.environ, sys.argv, sys.path[0], fresh
# sys.stdin/stdout/stderr on fds 0-2 with the encodings a fresh python3 picks, and runpy as __main__. Each run is
# still a fresh process that shares nothing with other runs (the zygote never runs a script itself). While a zygote
# starts, or when it cannot, the plan's argv is exec'd as usual. The zygote reports forks and exits to the launcher
# over a SOCK_SEQPACKET pair, the run's descriptors travel with SCM_RIGHTS. The zygote receives only a run id: the plan
# rides in a memfd that the forked run reads, so the zygote's memory, which every later run inherits, never holds an
# earlier run's environment.
import hmac
import json
import os
import resource
import select
import signal
import socket
import struct
import sys
import time

MIN_PYTHON = (3, 9)
REQUEST_MAGIC = b"CGBR"
STDOUT_MAGIC = b"CGBO"
SECRET_BYTES = 32
TOKEN_BYTES = 16
MAX_PLAN_BYTES = 4 << 20
# Connections whose partner has not arrived within this many seconds are dropped (a client of the server that
# vanished between its two connects, or a stranger that got past the directory's mode).
UNPAIRED_TIMEOUT_S = 10.0
STALE_SWEEP_S = 1.0
MAX_UNPAIRED = 4096
RLIMITS = {
    "cpu": resource.RLIMIT_CPU,
    "fsize": resource.RLIMIT_FSIZE,
    "nofile": resource.RLIMIT_NOFILE,
    "nproc": resource.RLIMIT_NPROC,
    "data": resource.RLIMIT_DATA,
    "core": resource.RLIMIT_CORE,
}
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38


def load_prctl():
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
        prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]

        def call(option, value):
            if prctl(option, value, 0, 0, 0) != 0:
                errno = ctypes.get_errno()
                raise OSError(errno, os.strerror(errno))

        return call
    except (ImportError, OSError, AttributeError):
        return None


PRCTL = load_prctl()


# What a zygote starts with: the environment a run's python starts with, minus what differs per run. Its LANG is
# ZYGOTE_LOCALE in plan-run.ts (runs in another locale are exec'd): keep them equal.
ZYGOTE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/nonexistent"}
# A zygote's forks share what python3 fixes at start-up (the str hash seed): a zygote serves this many runs, or this
# many seconds, then a fresh one takes over and the old one exits once its runs have ended.
ZYGOTE_MAX_FORKS = 1000
ZYGOTE_MAX_AGE_S = 60.0


class Zygote:
    __slots__ = ("interpreter", "pid", "channel", "ready", "forks", "since")

    def __init__(self, interpreter, pid, channel):
        self.interpreter = interpreter
        self.pid = pid
        self.channel = channel
        self.ready = False
        self.forks = 0
        self.since = time.monotonic()


class Conn:
    __slots__ = ("sock", "header", "need", "kind", "plan_len", "since")

    def __init__(self, sock):
        self.sock = sock
        self.header = b""
        self.need = 5  # magic + first byte of the rest, then grows
        self.kind = None
        self.plan_len = None
        self.since = time.monotonic()


class Launcher:
    def __init__(self, socket_dir, socket_name, secret, zygote_max_forks=ZYGOTE_MAX_FORKS):
        self.secret = secret
        self.zygote_max_forks = zygote_max_forks
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        # Bound through a descriptor of its directory: a unix socket path has at most 107 bytes, a TMPDIR may be deep.
        dir_fd = os.open(socket_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            self.listener.bind("/proc/self/fd/%d/%s" % (dir_fd, socket_name))
        finally:
            os.close(dir_fd)
        self.listener.listen(1024)
        self.listener.setblocking(False)
        self.poller = select.epoll()
        self.conns = {}  # fd -> Conn still reading its header
        self.plans = {}  # token -> (plan, request socket, since)
        self.outs = {}  # token -> (stdout socket, since)
        self.runs = {}  # pid -> run id, for runs not reaped yet
        self.ids = {}  # run id -> pid
        self.errpipes = {}  # fd -> (run id, bytes so far)
        self.swept_at = 0.0  # when drop_stale last looked
        self.zygotes = {}  # interpreter -> Zygote
        self.zygote_fds = {}  # channel fd -> Zygote
        self.warm_runs = {}  # run id -> Zygote that forked it (until it reports the exit)
        self.out = sys.stdout.buffer
        self.control = sys.stdin.buffer.raw
        self.pending = b""
        self.wake_r = child_exit_wakeup()
        os.set_blocking(self.control.fileno(), False)
        self.poller.register(self.listener.fileno(), select.EPOLLIN)
        self.poller.register(self.control.fileno(), select.EPOLLIN)
        self.poller.register(self.wake_r, select.EPOLLIN)

    def send(self, message):
        self.out.write((json.dumps(message, separators=(",", ":")) + "\n").encode())
        self.out.flush()

    def fail_run(self, run_id, text):
        # A run that never started: the setup error, then its end.
        self.send({"id": run_id, "error": text, "stage": "setup"})
        self.send({"id": run_id, "exit": None, "signal": None})

    def loop(self):
        while True:
            try:
                events = self.poller.poll(1.0)
            except InterruptedError:
                continue
            for fd, _ in events:
                try:
                    if fd == self.listener.fileno():
                        self.accept()
                    elif fd == self.control.fileno():
                        if not self.read_control():
                            self.kill_all()
                            return
                    elif fd == self.wake_r:
                        self.reap()
                    elif fd in self.errpipes:
                        self.read_errpipe(fd)
                    elif fd in self.zygote_fds:
                        self.read_zygote(self.zygote_fds[fd])
                    elif fd in self.conns:
                        self.read_header(fd)
                except Exception as error:  # noqa: BLE001 - a bad message never kills the launcher
                    self.send({"warning": "%s: %s" % (type(error).__name__, error)})
            self.drop_stale()

    def accept(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            if len(self.conns) >= MAX_UNPAIRED:
                sock.close()
                continue
            sock.setblocking(False)
            self.conns[sock.fileno()] = Conn(sock)
            self.poller.register(sock.fileno(), select.EPOLLIN)

    def close_conn(self, fd):
        conn = self.conns.pop(fd)
        self.poller.unregister(fd)
        conn.sock.close()

    def read_header(self, fd):
        conn = self.conns[fd]
        try:
            chunk = conn.sock.recv(conn.need - len(conn.header))  # never a byte past the header
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close_conn(fd)
            return
        if not chunk:
            self.close_conn(fd)
            return
        conn.header += chunk
        if len(conn.header) < conn.need:
            return
        if conn.kind is None:
            magic = conn.header[:4]
            if magic == REQUEST_MAGIC:
                conn.kind = "plan"
                conn.need = 4 + SECRET_BYTES + 4
            elif magic == STDOUT_MAGIC:
                conn.kind = "stdout"
                conn.need = 4 + TOKEN_BYTES
            else:
                self.close_conn(fd)
                return
            if len(conn.header) < conn.need:
                return
        if conn.kind == "plan" and conn.plan_len is None:
            if not hmac.compare_digest(conn.header[4 : 4 + SECRET_BYTES], self.secret):
                self.close_conn(fd)
                return
            (conn.plan_len,) = struct.unpack(">I", conn.header[4 + SECRET_BYTES : conn.need])
            if conn.plan_len > MAX_PLAN_BYTES:
                self.close_conn(fd)
                return
            conn.need += conn.plan_len
            if len(conn.header) < conn.need:
                return
        # The header is complete: the socket leaves the header stage.
        self.poller.unregister(fd)
        del self.conns[fd]
        conn.sock.setblocking(True)
        now = time.monotonic()
        if conn.kind == "stdout":
            token = conn.header[4:].hex()
            if token in self.outs:
                conn.sock.close()
                return
            self.outs[token] = (conn.sock, now)
        else:
            plan = json.loads(conn.header[4 + SECRET_BYTES + 4 :])
            token = plan["token"]
            if token in self.plans:
                conn.sock.close()
                return
            self.plans[token] = (plan, conn.sock, now)
        self.try_start(token)

    def try_start(self, token):
        if token not in self.plans or token not in self.outs:
            return
        plan, request, _ = self.plans.pop(token)
        stdout, _ = self.outs.pop(token)
        run_id = plan["id"]
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        zygote = self.zygote_for(plan.get("warm"))
        if zygote is not None:
            # The plan (the request's environment: cookies, credentials) travels in a memfd that only the forked run
            # reads: the zygote never holds a run's bytes, so no later run forked from it can find them in its memory.
            plan_fd = None
            try:
                plan_fd = plan_memfd(plan)
                socket.send_fds(zygote.channel, [json.dumps({"run": run_id}).encode()],
                                [request.fileno(), stdout.fileno(), err_w, plan_fd])
            except OSError:
                zygote = None  # it just died: exec instead
            finally:
                if plan_fd is not None:
                    os.close(plan_fd)
            if zygote is not None:
                os.close(err_w)
                request.close()
                stdout.close()
                self.warm_runs[run_id] = zygote
                os.set_blocking(err_r, False)
                self.errpipes[err_r] = (run_id, b"")
                self.poller.register(err_r, select.EPOLLIN)
                return  # the pid follows from the zygote
        try:
            pid = os.fork()
        except OSError as error:
            os.close(err_r)
            os.close(err_w)
            request.close()
            stdout.close()
            self.fail_run(run_id, "fork: %s" % error.strerror)
            return
        if pid == 0:
            run_child(plan, request, stdout, err_w, os.getppid())
        os.close(err_w)
        request.close()
        stdout.close()
        self.runs[pid] = run_id
        self.ids[run_id] = pid
        os.set_blocking(err_r, False)
        self.errpipes[err_r] = (run_id, b"")
        self.poller.register(err_r, select.EPOLLIN)
        self.send({"id": run_id, "pid": pid, "warm": False})

    def zygote_for(self, warm):
        # The ready zygote of the plan's interpreter; starts one (for later runs) when there is none yet.
        if not warm or PRCTL is None:
            return None
        interpreter = warm.get("interpreter")
        zygote = self.zygotes.get(interpreter)
        if zygote is not None and (zygote.forks >= self.zygote_max_forks or time.monotonic() - zygote.since > ZYGOTE_MAX_AGE_S):
            self.retire_zygote(zygote)
            zygote = None
        if zygote is None:
            zygote = self.start_zygote(interpreter)
        if zygote is None or not zygote.ready:
            return None
        zygote.forks += 1
        return zygote

    def retire_zygote(self, zygote):
        # No new runs for it; it exits once its runs have ended (its channel then closes and drop_zygote follows).
        del self.zygotes[zygote.interpreter]
        try:
            zygote.channel.send(json.dumps({"retire": True}).encode())
        except OSError:
            pass

    def start_zygote(self, interpreter):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            pid = os.fork()
        except OSError:
            ours.close()
            theirs.close()
            return None
        if pid == 0:
            try:
                null = os.open(os.devnull, os.O_RDWR)
                os.dup2(null, 0)
                os.dup2(null, 1)
                os.dup2(theirs.fileno(), 3)
                os.closerange(4, 1 << 20)
                os.setsid()
                PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)  # dies with the launcher
                for number in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD):
                    signal.signal(number, signal.SIG_DFL)
                signal.set_wakeup_fd(-1)
                # The environment a run's python would start with (its locale picks the encodings); no HOME: no
                # user site directory, as for a run's uid without a home.
                os.execve(interpreter, [interpreter, os.path.abspath(__file__), "--zygote", "3"], ZYGOTE_ENV)
            finally:
                os._exit(127)
        theirs.close()
        zygote = Zygote(interpreter, pid, ours)
        self.zygotes[interpreter] = zygote
        self.zygote_fds[ours.fileno()] = zygote
        self.runs[pid] = None  # reaped here, reported to nobody
        self.poller.register(ours.fileno(), select.EPOLLIN)
        return zygote

    def read_zygote(self, zygote):
        try:
            message = zygote.channel.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            message = b""
        if not message:
            self.drop_zygote(zygote)
            return
        message = json.loads(message)
        if message.get("ready"):
            zygote.ready = True
            return
        run_id = message.get("id")
        if "pid" in message:
            self.ids[run_id] = message["pid"]
            self.send({"id": run_id, "pid": message["pid"], "warm": True})
        elif "exit" in message:
            self.warm_runs.pop(run_id, None)
            self.ids.pop(run_id, None)
            self.finish_errpipes_of(run_id)
            self.send(message)
        elif "error" in message:  # it could not fork the run
            self.warm_runs.pop(run_id, None)
            self.finish_errpipes_of(run_id)
            self.fail_run(run_id, message["error"])
        elif "warning" in message:
            self.send({"warning": "zygote %s: %s" % (zygote.interpreter, message["warning"])})

    def drop_zygote(self, zygote):
        # A zygote that exited: its runs are reparented to us (a subreaper) and reaped and reported here.
        self.poller.unregister(zygote.channel.fileno())
        del self.zygote_fds[zygote.channel.fileno()]
        zygote.channel.close()
        if self.zygotes.get(zygote.interpreter) is zygote:
            del self.zygotes[zygote.interpreter]
        for run_id, owner in list(self.warm_runs.items()):
            if owner is zygote:
                del self.warm_runs[run_id]
                pid = self.ids.get(run_id)
                if pid is None:  # never forked
                    self.finish_errpipes_of(run_id)
                    self.fail_run(run_id, "the warm python zygote died")
                else:
                    self.runs[pid] = run_id

    def finish_errpipes_of(self, run_id):
        for fd, entry in list(self.errpipes.items()):
            if entry[0] != run_id:
                continue
            try:
                while True:
                    chunk = os.read(fd, 4096)
                    if not chunk:
                        break
                    self.errpipes[fd] = (run_id, self.errpipes[fd][1] + chunk)
            except BlockingIOError:
                pass
            self.finish_errpipe(fd)

    def read_errpipe(self, fd):
        run_id, got = self.errpipes[fd]
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            return
        if chunk:
            self.errpipes[fd] = (run_id, got + chunk)
            return
        self.finish_errpipe(fd)

    def finish_errpipe(self, fd):
        run_id, got = self.errpipes.pop(fd)
        self.poller.unregister(fd)
        os.close(fd)
        if got:
            stage, _, message = got.decode("utf-8", "replace").partition(":")
            self.send({"id": run_id, "error": message.strip(), "stage": stage})

    def reap(self):
        for pid, status in exited_children(self.wake_r):
            run_id = self.runs.pop(pid, None)
            if run_id is None:
                continue  # a zygote, or an orphaned descendant of a run reparented to us (subreaper)
            self.ids.pop(run_id, None)
            self.finish_errpipes_of(run_id)  # the exec error, if any, goes out before the exit
            self.send(exit_message(run_id, status))

    def read_control(self):
        try:
            chunk = self.control.read(1 << 16)
        except BlockingIOError:
            return True
        if chunk is None:
            return True
        if not chunk:
            return False
        self.pending += chunk
        while b"\n" in self.pending:
            line, self.pending = self.pending.split(b"\n", 1)
            try:
                message = json.loads(line)
                self.kill(int(message["kill"]), int(message["signal"]))
            except (ValueError, KeyError, TypeError) as error:
                self.send({"warning": "bad control line: %s" % error})
        return True

    def kill(self, run_id, number):
        # Only a child not reaped yet is signalled: its pid cannot have been reused. A warm run is the zygote's child.
        zygote = self.warm_runs.get(run_id)
        if zygote is not None:
            try:
                zygote.channel.send(json.dumps({"kill": run_id, "signal": number}).encode())
            except OSError:
                pass
            return
        pid = self.ids.get(run_id)
        if pid is None:
            return
        signal_run(pid, number)

    def kill_all(self):
        for run_id in list(self.warm_runs):
            pid = self.ids.get(run_id)
            if pid is not None:
                signal_run(pid, signal.SIGKILL)
        for pid in list(self.runs):
            signal_run(pid, signal.SIGKILL)

    def drop_stale(self):
        now = time.monotonic()
        if now - self.swept_at < STALE_SWEEP_S:  # the timeout is 10 s: a sweep a second is plenty, not one per event
            return
        self.swept_at = now
        for fd, conn in list(self.conns.items()):
            if now - conn.since > UNPAIRED_TIMEOUT_S:
                self.close_conn(fd)
        for table in (self.plans, self.outs):
            for token, entry in list(table.items()):
                if now - entry[-1] > UNPAIRED_TIMEOUT_S:
                    sock = entry[1] if table is self.plans else entry[0]
                    sock.close()
                    del table[token]
                    if table is self.plans:
                        self.fail_run(entry[0]["id"], "no stdout connection arrived")


def child_exit_wakeup():
    # A non-blocking pipe that turns readable when a child exits (SIGCHLD through Python's wakeup descriptor).
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    return wake_r


def exited_children(wake_r):
    # Empties the wakeup pipe, then yields (pid, status) of every child that has exited, without blocking.
    try:
        while os.read(wake_r, 512):
            pass
    except BlockingIOError:
        pass
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        yield pid, status


def signal_run(pid, number):
    # The run's first process and its process group (each run is its own session); gone or not ours is no error.
    for target in (os.kill, os.killpg):
        try:
            target(pid, number)
        except OSError:
            pass


def exit_message(run_id, status):
    if os.WIFSIGNALED(status):
        return {"id": run_id, "exit": None, "signal": os.WTERMSIG(status)}
    return {"id": run_id, "exit": os.WEXITSTATUS(status), "signal": None}


def prepare_child(plan, request_fd, stdout_fd, err_w, parent_pid):
    # The steps before exec, in the forked child of the launcher or a zygote. Raises OSError naming what failed.
    signal.set_wakeup_fd(-1)
    os.setsid()  # its own session and process group: a group kill reaches its descendants
    os.dup2(request_fd, 0)
    os.dup2(request_fd, 2)
    if plan.get("stdoutFd", 1) == 3:  # bwrap: fd 1 is /dev/null, the stdout connection rides on fd 3
        os.dup2(stdout_fd, 3)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
    else:
        os.dup2(stdout_fd, 1)
    for path in plan.get("cgroups", []):  # joined as the launcher's user, before anything of the run can fork
        try:
            with open(path, "w") as handle:
                handle.write(str(os.getpid()))
        except OSError as error:
            raise OSError(error.errno, "cannot join cgroup %s: %s" % (path, error.strerror))
    for name, limit in plan.get("rlimits", {}).items():
        resource.setrlimit(RLIMITS[name], (limit["soft"], limit["hard"]))
    gid = plan.get("gid")
    uid = plan.get("uid")
    if gid is not None:
        os.setgroups([])
        os.setgid(gid)
    if uid is not None:
        os.setuid(uid)
    if PRCTL is not None:
        PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)  # after setuid, which clears it
        if plan.get("noNewPrivs"):
            PRCTL(PR_SET_NO_NEW_PRIVS, 1)
    if os.getppid() != parent_pid:  # the parent died before the death signal was armed
        os._exit(127)
    try:
        os.chdir(plan["cwd"])
    except OSError as error:
        raise OSError(error.errno, "cannot enter %s as uid %d: %s" % (plan["cwd"], os.getuid(), error.strerror))
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    # Exactly 0, 1, 2 (and 3 under bwrap) reach the run: nothing this process or the server inherited.
    first = 4 if plan.get("stdoutFd", 1) == 3 else 3
    os.closerange(first, err_w)
    os.closerange(err_w + 1, 1 << 20)


def plan_memfd(plan):
    # A run's plan in an anonymous memory file, read from the start by whoever receives the descriptor.
    fd = os.memfd_create("cgibox-plan", os.MFD_CLOEXEC)
    try:
        data = json.dumps(plan).encode()
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_plan_memfd(fd):
    chunks = []
    try:
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    return json.loads(b"".join(chunks))


def report_failure(err_w, stage, plan, error):
    try:
        text = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        if stage == "exec":
            text = "%s: %s" % (plan["argv"][0], text)
        os.write(err_w, ("%s: %s" % (stage, text)).encode("utf-8", "replace"))
    finally:
        os._exit(127)


def run_child(plan, request, stdout, err_w, launcher_pid):
    # In the forked child: nothing here may return to the loop. Failures go to the error pipe as "stage: message".
    stage = "setup"
    try:
        prepare_child(plan, request.fileno(), stdout.fileno(), err_w, launcher_pid)
        for number in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD, signal.SIGINT):
            signal.signal(number, signal.SIG_DFL)  # Python changed these; programs get the defaults
        stage = "exec"
        argv = plan["argv"]
        if "/" in argv[0]:
            os.execve(argv[0], argv, plan["env"])
        os.execvpe(argv[0], argv, plan["env"])  # a bare name is looked up on the run's own PATH
    except BaseException as error:  # noqa: BLE001 - report anything, then leave as a failed exec does
        report_failure(err_w, stage, plan, error)


class ZygoteServer:
    # The zygote side: forks runs on the launcher's request and reports their pids and exits.

    def __init__(self, fd):
        import gc
        import io  # noqa: F401 - loaded here, once, for every run
        import pkgutil  # noqa: F401 - runpy.run_path imports it (and typing) on its first call
        import runpy  # noqa: F401
        import threading  # noqa: F401
        import traceback  # noqa: F401

        self.channel = fd
        self.sock = socket.socket(fileno=fd)  # for recv_fds; detached in each run
        self.retiring = False
        self.children = {}  # pid -> run id
        self.ids = {}  # run id -> pid
        self.poller = select.epoll()
        self.wake_r = child_exit_wakeup()
        self.poller.register(fd, select.EPOLLIN)
        self.poller.register(self.wake_r, select.EPOLLIN)
        # What a fresh python3 picked for its standard streams in this environment, to give each run the same.
        self.stdio = {name: (getattr(sys, name).encoding, getattr(sys, name).errors) for name in ("stdin", "stdout", "stderr")}
        if PRCTL is not None:
            try:
                PRCTL(PR_SET_CHILD_SUBREAPER, 1)
            except OSError:
                pass
        gc.freeze()  # forked runs share these objects; the collector leaves them alone

    def send(self, message):
        os.write(self.channel, json.dumps(message).encode())

    def loop(self):
        self.send({"ready": True})
        while True:
            try:
                events = self.poller.poll()
            except InterruptedError:
                continue
            for fd, _ in events:
                if fd == self.wake_r:
                    self.reap()
                    continue
                try:
                    message, fds, _flags, _addr = socket.recv_fds(self.sock, 1 << 20, 4)
                except OSError:
                    message = b""
                    fds = []
                if not message:  # the launcher is gone: so are the runs
                    for pid in list(self.children):
                        signal_run(pid, signal.SIGKILL)
                    os._exit(0)
                try:
                    self.handle(json.loads(message), fds)
                except Exception as error:  # noqa: BLE001 - a bad message never kills the zygote
                    for extra in fds:
                        os.close(extra)
                    self.send({"warning": "%s: %s" % (type(error).__name__, error)})

    def handle(self, message, fds):
        if "retire" in message:
            self.retiring = True
            self.exit_if_retired()
            return
        if "kill" in message:
            pid = self.ids.get(message["kill"])
            if pid is not None:
                signal_run(pid, message["signal"])
            return
        run_id = message["run"]
        request_fd, stdout_fd, err_w, plan_fd = fds
        try:
            pid = os.fork()
        except OSError as error:
            for extra in fds:
                os.close(extra)
            self.send({"id": run_id, "error": "fork: %s" % error.strerror})
            return
        if pid == 0:
            # The child never returns to the loop: it ends as the script ends (SystemExit: the normal interpreter
            # exit, atexit handlers and flushes included), or here.
            code = 1
            try:
                self.become(plan_fd, request_fd, stdout_fd, err_w)
            except SystemExit as done:
                code = exit_code(done)
            except BaseException as error:  # noqa: BLE001
                os.write(2, ("cgibox zygote: %s: %s\n" % (type(error).__name__, error)).encode("utf-8", "replace"))
            finish_interpreter(code)
        for extra in fds:
            os.close(extra)
        self.children[pid] = run_id
        self.ids[run_id] = pid
        self.send({"id": run_id, "pid": pid})

    def reap(self):
        for pid, status in exited_children(self.wake_r):
            run_id = self.children.pop(pid, None)
            if run_id is None:
                continue
            del self.ids[run_id]
            self.send(exit_message(run_id, status))
        self.exit_if_retired()

    def exit_if_retired(self):
        if self.retiring and not self.children:
            os._exit(0)

    def become(self, plan_fd, request_fd, stdout_fd, err_w):
        # In the forked child: its plan, the same steps as an exec'd run, then the script in this interpreter.
        import io
        import runpy
        import traceback

        plan = {}
        try:
            # Nothing of the zygote may own a descriptor the script will reuse (a finalizer would close it).
            self.poller.close()
            self.sock.detach()
            plan = read_plan_memfd(plan_fd)
            prepare_child(plan, request_fd, stdout_fd, err_w, os.getppid())
            os.close(err_w)  # set up: the launcher sees a clean end of the error pipe
        except BaseException as error:  # noqa: BLE001
            report_failure(err_w, "setup", plan, error)
        warm = plan["warm"]
        script = warm["script"]
        os.environ.clear()
        os.environ.update(plan["env"])
        time.tzset()
        sys.argv[:] = [script]
        if hasattr(sys, "orig_argv"):
            sys.orig_argv[:] = [warm.get("argv0", warm["interpreter"]), script]
        sys.path[0] = os.path.dirname(os.path.realpath(script))
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # what a fresh python3 sets; SIGPIPE, SIGXFSZ stay ignored
        (in_enc, in_err), (out_enc, out_err), (err_enc, err_err) = (self.stdio[name] for name in ("stdin", "stdout", "stderr"))
        sys.stdin = sys.__stdin__ = io.open(0, "r", encoding=in_enc, errors=in_err, closefd=False)
        sys.stdout = sys.__stdout__ = io.open(1, "w", encoding=out_enc, errors=out_err, closefd=False)
        # stderr is line-buffered even when it is not a terminal (Python 3.9+).
        sys.stderr = sys.__stderr__ = io.TextIOWrapper(io.open(2, "wb", closefd=False), encoding=err_enc, errors=err_err,
                                                       line_buffering=True)
        try:
            with io.open_code(script):
                pass
        except OSError as error:
            sys.stderr.write("%s: can't open file %r: [Errno %d] %s\n" % (warm["interpreter"], script, error.errno, error.strerror))
            sys.exit(2)
        try:
            runpy.run_path(script, run_name="__main__")
        except SystemExit:
            raise
        except BaseException:
            kind, value, tb = sys.exc_info()
            # What a fresh python3 shows: the script's frames, not runpy's or the zygote's.
            while tb is not None and tb.tb_frame.f_code.co_filename != script:
                tb = tb.tb_next
            if value is not None and tb is not None:
                value = value.with_traceback(tb)  # the hook prints the exception's own traceback
            try:
                sys.excepthook(kind, value, tb)
            except BaseException:  # noqa: BLE001
                traceback.print_exception(kind, value, tb)
            sys.exit(1)
        sys.exit(0)


def exit_code(done):
    # What python3 makes of SystemExit(x): None is 0, an int is itself, anything else is printed and is 1.
    if done.code is None:
        return 0
    if isinstance(done.code, int):
        return done.code & 0xFF
    try:
        sys.stderr.write("%s\n" % (done.code,))
    except Exception:  # noqa: BLE001
        pass
    return 1


def finish_interpreter(code):
    # A fresh python3's exit as far as a script can tell: non-daemon threads joined, atexit handlers run, the standard
    # streams flushed; then _exit, without tearing down every module of the zygote (tens of ms for nothing to see).
    import atexit
    import threading

    try:
        threading._shutdown()
    except Exception:  # noqa: BLE001
        pass
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed pipe: python3 says so on stderr and exits 120
            code = code or 120
    os._exit(code)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--zygote":
        ZygoteServer(int(sys.argv[2])).loop()
        return
    # Ctrl-C in a terminal reaches the whole process group: cgibox drains on it, and the launcher must outlive that.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.version_info < MIN_PYTHON:
        sys.stdout.write(json.dumps({"fatal": "python %d.%d or later is needed" % MIN_PYTHON}) + "\n")
        sys.stdout.flush()
        sys.exit(3)
    line = b""
    while not line.endswith(b"\n"):  # unbuffered: nothing after this line may be read into a buffer
        byte = os.read(0, 1)
        if not byte:
            sys.exit(0)
        line += byte
    settings = json.loads(line)
    secret = bytes.fromhex(settings["secret"])
    # Descriptors cgibox itself inherited (a shell's `exec 41<dir`) must not reach the runs, nor stay here.
    os.closerange(3, 1 << 20)
    launcher = Launcher(sys.argv[1], sys.argv[2], secret, int(settings.get("zygoteMaxForks", ZYGOTE_MAX_FORKS)))
    subreaper = False
    if PRCTL is not None:
        try:
            PRCTL(PR_SET_CHILD_SUBREAPER, 1)  # orphans of runs are reaped here, never left as zombies
            subreaper = True
        except OSError:
            pass
    launcher.send({"ready": True, "python": "%d.%d" % sys.version_info[:2], "prctl": PRCTL is not None,
                   "subreaper": subreaper})
    launcher.loop()


if __name__ == "__main__":
    main()

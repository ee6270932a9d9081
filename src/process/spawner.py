# cgibox's spawner: a small long-lived process that forks script runs for the server, so that the big Node process
# is never forked per request (Apache mod_cgid's answer). It reads one JSON request per line on stdin, takes each
# run's stdin, stdout and stderr as three connections to a unix socket in a private (0700) directory, forks, applies
# the run's steps (session, stdio, cgroups, rlimits, identity, cwd) and execs. It reports {"id","pid"} at fork and
# {"id","exit","signal"} when it has reaped the run. It decides nothing: policy stays in the server.
import json
import os
import resource
import select
import signal
import socket
import struct
import sys

RLIMITS = {
    "cpu": resource.RLIMIT_CPU,
    "fsize": resource.RLIMIT_FSIZE,
    "nofile": resource.RLIMIT_NOFILE,
    "nproc": resource.RLIMIT_NPROC,
    "data": resource.RLIMIT_DATA,
    "core": resource.RLIMIT_CORE,
}
HEADER = struct.Struct(">IB")  # run id, stream: 0 stdin, 1 stdout, 2 stderr


def main():
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sys.argv[1])
    listener.listen(1024)
    control_in = sys.stdin.buffer.raw
    os.set_blocking(control_in.fileno(), False)
    out = sys.stdout.buffer
    poller = select.epoll()
    poller.register(listener.fileno(), select.EPOLLIN)
    poller.register(control_in.fileno(), select.EPOLLIN)
    requests = {}  # run id -> request
    streams = {}  # run id -> {stream: socket}
    headers = {}  # fd -> [socket, bytes received]
    children = {}  # pidfd -> (run id, pid)
    pending = b""

    def send(message):
        out.write((json.dumps(message) + "\n").encode())
        out.flush()

    def try_start(run_id):
        request = requests.get(run_id)
        parts = streams.get(run_id)
        if request is None or parts is None or len(parts) < 3:
            return
        del requests[run_id], streams[run_id]
        try:
            pid = os.fork()
        except OSError as error:
            send({"id": run_id, "error": error.strerror})
        else:
            if pid == 0:
                run_child(request, parts)
            pidfd = os.pidfd_open(pid)
            children[pidfd] = (run_id, pid)
            poller.register(pidfd, select.EPOLLIN)
            send({"id": run_id, "pid": pid})
        for part in parts.values():
            part.close()

    send({"ready": True})
    while True:
        for fd, _events in poller.poll():
            if fd == listener.fileno():
                connection, _ = listener.accept()
                connection.setblocking(False)
                headers[connection.fileno()] = [connection, b""]
                poller.register(connection.fileno(), select.EPOLLIN)
            elif fd in headers:
                entry = headers[fd]
                try:
                    chunk = entry[0].recv(HEADER.size - len(entry[1]))  # never a byte of the body
                except BlockingIOError:
                    continue
                entry[1] += chunk
                if chunk and len(entry[1]) < HEADER.size:
                    continue
                poller.unregister(fd)
                del headers[fd]
                if not chunk:
                    entry[0].close()
                    continue
                run_id, stream = HEADER.unpack(entry[1])
                entry[0].setblocking(True)
                streams.setdefault(run_id, {})[stream] = entry[0]
                try_start(run_id)
            elif fd == control_in.fileno():
                chunk = control_in.read(1 << 16)
                if chunk is None:
                    continue
                if not chunk:  # the server is gone: so are its runs
                    for _run_id, pid in children.values():
                        try:
                            os.killpg(pid, signal.SIGKILL)
                        except OSError:
                            pass
                    return
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    request = json.loads(line)
                    requests[request["id"]] = request
                    try_start(request["id"])
            elif fd in children:
                run_id, pid = children.pop(fd)
                poller.unregister(fd)
                os.close(fd)
                _, status = os.waitpid(pid, 0)
                if os.WIFSIGNALED(status):
                    send({"id": run_id, "exit": None, "signal": os.WTERMSIG(status)})
                else:
                    send({"id": run_id, "exit": os.WEXITSTATUS(status), "signal": None})


def run_child(request, parts):
    # In the forked child: nothing here may return to the loop.
    try:
        os.setsid()  # its own session and process group: kill(-pid) reaches its descendants
        os.dup2(parts[0].fileno(), 0)
        if request.get("stdoutFd", 1) == 3:  # bwrap: fd 1 is /dev/null, the stdout socket rides on fd 3
            os.dup2(parts[1].fileno(), 3)
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
        else:
            os.dup2(parts[1].fileno(), 1)
        os.dup2(parts[2].fileno(), 2)
        for path in request.get("cgroups", []):  # joined before anything of the script can fork
            with open(path, "w") as handle:
                handle.write(str(os.getpid()))
        for name, limit in request.get("rlimits", {}).items():
            resource.setrlimit(RLIMITS[name], (limit["soft"], limit["hard"]))
        if request.get("gid") is not None:
            os.setgroups([])
            os.setgid(request["gid"])
        if request.get("uid") is not None:
            os.setuid(request["uid"])
        os.chdir(request["cwd"])
        for number in (signal.SIGPIPE, signal.SIGXFSZ):  # Python ignores these; scripts get the defaults
            signal.signal(number, signal.SIG_DFL)
        argv = request["argv"]
        os.execve(argv[0], argv, request["env"])
    except BaseException as error:  # noqa: BLE001 - report anything, then leave as a failed exec does
        try:
            os.write(2, ("cgibox: cannot start %s: %s\n" % (request["argv"][0], error)).encode())
        finally:
            os._exit(127)


if __name__ == "__main__":
    main()

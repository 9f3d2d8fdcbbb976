"""The envelope over nng: one Request frame out, one Reply frame back (proto/recr1/v1/envelope.proto)."""

import itertools
import os
import threading

import pynng
from pynng import nng

from recr1.errors import Code, DeadlineExceeded, Unavailable, error_for
from recr1.v1 import envelope_pb2

_request_ids = itertools.count(1)
_request_ids_lock = threading.Lock()


def default_address():
    """$RECR1_ADDRESS, else the daemon's default: ipc://$XDG_RUNTIME_DIR/recr1d.sock or
    ipc:///tmp/recr1d-<uid>/recr1d.sock."""
    if os.environ.get("RECR1_ADDRESS"):
        return os.environ["RECR1_ADDRESS"]
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return f"ipc://{runtime}/recr1d.sock"
    return f"ipc:///tmp/recr1d-{os.getuid()}/recr1d.sock"


def next_request_id():
    with _request_ids_lock:
        return next(_request_ids)


def set_recv_timeout(context, ms):
    # pynng exposes no per-context timeout; nng has one (nng_ctx_set_ms), and a context's receive
    # otherwise waits for ever.
    rv = nng.lib.nng_ctx_set_ms(context.context, b"recv-timeout", ms)
    if rv != 0:
        raise OSError(f"nng_ctx_set_ms: error {rv}")


class Channel:
    """A REQ socket dialled to one address. Thread-safe: every call runs on its own nng context."""

    def __init__(self, address, token=None):
        self.address = address
        self.token = token or ""
        # No automatic resend: a repeated Update would be applied twice. No reply-size cap: the
        # server enforces the limits that matter.
        self._socket = pynng.Req0(resend_time=-1, recv_max_size=0)
        try:
            self._socket.dial(address, block=True)
        except pynng.NNGException as exc:
            self._socket.close()
            raise Unavailable(f"cannot connect to {address}: {exc} (is the server running?)") from exc

    def call(self, method, request, reply_type, timeout):
        """Sends request (a protobuf message) to method and returns the decoded reply_type message.
        timeout is in seconds (None: wait for ever); it is also sent to the server as the deadline."""
        envelope = envelope_pb2.Request(
            method=method,
            request_id=next_request_id(),
            timeout_ms=0 if timeout is None else max(1, int(timeout * 1000)),
            auth_token=self.token,
            payload=request.SerializeToString(),
        )
        frame = self.roundtrip(envelope.SerializeToString(), timeout)
        reply = envelope_pb2.Reply.FromString(frame)
        if reply.status.code != Code.OK:
            raise error_for(reply.status, envelope.request_id)
        return reply_type.FromString(reply.payload)

    def roundtrip(self, frame, timeout):
        """Sends raw bytes and returns the raw reply bytes (for tests of the envelope itself)."""
        context = self._socket.new_context()
        try:
            # A little slack beyond the server's deadline, so that its DEADLINE_EXCEEDED reply can arrive.
            set_recv_timeout(context, -1 if timeout is None else int(timeout * 1000) + 1000)
            if threading.current_thread() is threading.main_thread():
                return self._interruptible(context, frame, timeout)
            return self._exchange(context, frame, timeout)
        finally:
            close_quietly(context)

    def _exchange(self, context, frame, timeout):
        try:
            context.send(frame)
            return context.recv()
        except pynng.Timeout as exc:
            raise DeadlineExceeded(f"no reply from {self.address} within {timeout} s") from exc
        except pynng.NNGException as exc:
            # The connection went away with the request in flight: it may or may not have been handled.
            raise Unavailable(f"lost the connection to {self.address} before the reply ({exc}); "
                              "the request may have been handled") from exc

    def _interruptible(self, context, frame, timeout):
        """_exchange on a helper thread: a blocked nng receive holds off Python's signal handling, so
        Ctrl-C would wait for the reply; the main thread waits where KeyboardInterrupt reaches it instead."""
        outcome = {}

        def run():
            try:
                outcome["reply"] = self._exchange(context, frame, timeout)
            except BaseException as exc:   # handed to the caller's thread
                outcome["error"] = exc

        helper = threading.Thread(target=run, name="recr1-call", daemon=True)
        helper.start()
        try:
            while helper.is_alive():
                helper.join(0.25)
        except KeyboardInterrupt:
            close_quietly(context)   # ends the helper's receive; the server may still handle the request
            raise
        if "error" in outcome:
            raise outcome["error"]
        return outcome["reply"]

    def close(self):
        self._socket.close()


def close_quietly(handle):
    try:
        handle.close()
    except pynng.Closed:
        pass

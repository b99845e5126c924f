"""One WSGI app on one endpoint: our Rekognition and SageMaker emulation in front of moto's server.

Routing is by the `X-Amz-Target` header that JSON-protocol AWS clients send ("RekognitionService.DetectCustomLabels",
"SageMaker.CreateLabelingJob"): the operations we emulate are answered here, everything else (S3, IAM,
STS, Lambda, and any Rekognition/SageMaker operation we don't emulate) goes to moto unchanged.
`/_rekfeedback/config` and `/_rekfeedback/stats` expose the knobs and call counts over HTTP.
"""

from __future__ import annotations

import importlib
import json
import logging
import threading
import traceback
import uuid
from typing import Any, Callable

import boto3
from botocore.config import Config
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from . import rekognition
from . import workteams  # SageMaker work teams moto lacks (preflight, local setup)
from .base import EmulatorConfig, EmulatorEnv
from .errors import ApiError
from .validation import validate_request

log = logging.getLogger(__name__)

SAGEMAKER_OPERATIONS = ("CreateLabelingJob", "DescribeLabelingJob", "ListLabelingJobs", "StopLabelingJob")
_CONTROL = "/_rekfeedback"
_JSON_11 = "application/x-amz-json-1.1"
# (X-Amz-Target prefix, botocore service name, name used in call counts)
_SERVICES = {"RekognitionService": ("rekognition", "Rekognition"), "SageMaker": ("sagemaker", "SageMaker")}


class EmulatorApp:
    def __init__(self, env: EmulatorEnv, moto_app: Callable | None = None) -> None:
        self.env = env
        self._rekognition = rekognition.handlers(env)
        self._workteams = workteams.handlers(env)
        self._sagemaker: dict[str, Callable[[dict], dict]] | None = None
        self._sagemaker_lock = threading.Lock()
        if moto_app is None:
            moto_app = _moto_dispatcher()
        self._moto = moto_app

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        path = environ.get("PATH_INFO", "")
        if path == _CONTROL or path.startswith(_CONTROL + "/"):
            return self._control(Request(environ))(environ, start_response)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        prefix, _, operation = target.partition(".")
        handler = self._handler(prefix, operation) if prefix in _SERVICES else None
        if handler is None:
            return self._moto(environ, start_response)
        return self._emulated(prefix, operation, handler, Request(environ))(environ, start_response)

    # ------------------------------------------------------------------------------------------

    def _handler(self, prefix: str, operation: str) -> Callable[[dict], dict] | None:
        if prefix == "RekognitionService":
            return self._rekognition.get(operation)
        if operation in self._workteams:  # Create/Describe/ListWorkteams: emulator/workteams.py
            return self._workteams[operation]
        if operation not in SAGEMAKER_OPERATIONS:
            return None
        handlers = self._sagemaker_handlers()
        if handlers is None or operation not in handlers:
            def missing(_params: dict) -> dict:
                raise ApiError("InternalFailure", f"SageMaker.{operation} is not emulated in this build of rekfeedback "
                                                  "(rekfeedback_local.emulator.sagemaker is missing).", 501)
            return missing
        return handlers[operation]

    def _sagemaker_handlers(self) -> dict | None:
        # Imported lazily: the Ground Truth emulation is a separate module that may not be installed yet.
        with self._sagemaker_lock:
            if self._sagemaker is None:
                try:
                    module = importlib.import_module("rekfeedback_local.emulator.sagemaker")
                except ModuleNotFoundError as exc:
                    if exc.name != "rekfeedback_local.emulator.sagemaker":
                        raise
                    return None
                self._sagemaker = module.handlers(self.env)
            return self._sagemaker

    def _emulated(self, prefix: str, operation: str, handler: Callable, request: Request) -> Response:
        service, label = _SERVICES[prefix]
        name = f"{label}.{operation}"
        with self.env.lock:
            self.env.calls[name] += 1
        try:
            try:
                raw = request.get_data()
                params = json.loads(raw) if raw else {}
            except ValueError:
                raise ApiError("SerializationException", "The request body is not valid JSON.")
            params = validate_request(service, operation, params)
            body = handler(params)
            return _json_response(200, body, {})
        except ApiError as exc:
            with self.env.lock:
                self.env.errors[f"{name}.{exc.code}"] += 1
            return _json_response(exc.status, exc.body(), {"x-amzn-ErrorType": exc.code})
        except Exception:  # noqa: BLE001 - an emulator bug must reach the client as a 500, like AWS's
            log.error("emulator failure in %s:\n%s", name, traceback.format_exc())
            code = "InternalServerError" if label == "Rekognition" else "InternalFailure"
            with self.env.lock:
                self.env.errors[f"{name}.{code}"] += 1
            err = ApiError(code, f"Internal emulator error in {name}; see the emulator's log.", 500)
            return _json_response(500, err.body(), {"x-amzn-ErrorType": code})

    def _control(self, request: Request) -> Response:
        path = request.path[len(_CONTROL):].rstrip("/")
        try:
            if path == "/config" and request.method == "GET":
                return _plain_json(200, self.env.config.as_dict())
            if path == "/config" and request.method == "POST":
                self.env.config.update(json.loads(request.get_data() or b"{}"))
                return _plain_json(200, self.env.config.as_dict())
            if path == "/stats" and request.method == "GET":
                return _plain_json(200, self.env.stats())
            if path == "/stats/reset" and request.method == "POST":
                self.env.reset_stats()
                return _plain_json(200, self.env.stats())
        except (KeyError, ValueError, TypeError) as exc:
            return _plain_json(400, {"message": str(exc.args[0] if exc.args else exc)})
        return _plain_json(404, {"message": f"no control endpoint {request.method} {request.path}"})


def _json_response(status: int, body: dict, headers: dict) -> Response:
    headers = {**headers, "x-amzn-RequestId": str(uuid.uuid4())}
    return Response(json.dumps(body, default=_default), status=status, headers=headers, content_type=_JSON_11)


def _plain_json(status: int, body: dict) -> Response:
    return Response(json.dumps(body, default=_default), status=status, content_type="application/json")


def _default(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _moto_dispatcher() -> Callable:
    """moto's dispatcher, remembering the backend found for each Host.

    moto finds it anew for every request, under one lock: a listing of its package folder (about
    200 entries) and a match against hundreds of URL patterns. That is CPU an emulated S3 request
    (a shard's header read, checkpoint or rate hint, DetectCustomLabels' own HEAD) takes from the
    clients on a two-core machine, with nothing to learn from: the answer depends on the Host only.
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    class Dispatcher(DomainDispatcherApplication):
        def __init__(self, create_app: Callable) -> None:
            super().__init__(create_app)
            self._backends: dict[str | None, Any] = {}

        def get_backend_for_host(self, host):  # called under self.lock
            if host not in self._backends:
                self._backends[host] = super().get_backend_for_host(host)
            return self._backends[host]

    return Dispatcher(create_backend_app)


# ---------------------------------------------------------------------------------------------- serving


def make_env(endpoint_url: str, config: EmulatorConfig, region: str = "us-east-1") -> EmulatorEnv:
    env = EmulatorEnv(config=config, endpoint_url=endpoint_url, region=region)

    def s3_client():
        # The emulated services read and write S3 through the same endpoint, exactly as a client would.
        return boto3.session.Session().client(
            "s3", endpoint_url=env.endpoint_url, region_name=region,
            aws_access_key_id="testing", aws_secret_access_key="testing",
            config=Config(retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=32),
        )

    env.s3_factory = s3_client
    return env


class EmulatorServer:
    """The threaded werkzeug server (one thread per request: DetectCustomLabels calls overlap)."""

    def __init__(self, host: str, port: int, config: EmulatorConfig, verbose: bool = False) -> None:
        from moto.moto_server.werkzeug_app import MotoRequestHandler

        handler = MotoRequestHandler if verbose else _QuietHandler
        # Bind first so that port=0 resolves to a real port before the env needs its endpoint.
        self._server = make_server(host, port, _Deferred(), threaded=True, request_handler=handler)
        self._server.daemon_threads = True
        self.host = host
        self.port = self._server.server_port
        self.endpoint_url = f"http://{host}:{self.port}"
        self.env = make_env(self.endpoint_url, config)
        self.app = EmulatorApp(self.env)
        self._server.app = self.app
        self._thread: threading.Thread | None = None

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="rekfeedback-emulator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)


class _Deferred:
    def __call__(self, environ, start_response):  # pragma: no cover - replaced before serving starts
        raise RuntimeError("emulator app not ready")


def _quiet_handler():
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class QuietHandler(MotoRequestHandler):
        """moto's handler (keeps underscored S3 metadata headers), without a log line per request."""

        def log_request(self, *args, **kwargs) -> None:
            pass

    return QuietHandler


_QuietHandler = _quiet_handler()

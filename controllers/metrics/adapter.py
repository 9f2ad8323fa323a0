"""The custom metrics API adapter: `custom.metrics.k8s.io/v1beta2` served from Redis.

    python -m controllers.metrics.adapter --redis-url redis://... --port 6443 \\
        --tls-cert tls.crt --tls-key tls.key [--kubeconfig K | --in-cluster] [--plain-http]

Every value is served with the time it was *sampled* (the collector's timestamp), never "now";
a missing or expired value is a 404 `Status` (NotFound), never 0.

- `GET /apis/custom.metrics.k8s.io/v1beta2`: discovery (`pods/load`, `pods/active_tasks`,
  `pods/reserved_tasks`, `elasticworkers.elasticcluster.sarweshsuman.com/total_cluster_load`,
  `.../alive_workers`);
- `GET .../namespaces/{ns}/pods/{pod}/load`, `.../pods/*/load?labelSelector=...`;
- `GET .../namespaces/{ns}/elasticworkers.elasticcluster.sarweshsuman.com/{ew}/total_cluster_load`;
- `/healthz`, `/livez` (process up), `/readyz` (Redis answers).

Behind the aggregation layer (an `APIService`, `kind-config/metrics/`) it authenticates like any
extension API server: the aggregator's front-proxy client certificate (CA and allowed names from
`kube-system/extension-apiserver-authentication`) with the user in `X-Remote-User`/`-Group`, a
client certificate of the cluster CA, or a bearer token (TokenReview); and authorizes each request
with a SubjectAccessReview. `--plain-http` (tests, loopback only) turns TLS and auth off.

Pods for a `*` list come from the Kubernetes API by label selector, or (`--pod-source redis`, no
cluster) from a SCAN of the pod keys; there the only selectors understood are none and
`elasticcluster.sarweshsuman.com/elasticworker=<name>` (the collector's member list).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from controllers.core.types import Reading
from controllers.metrics import store, wire
from controllers.metrics.membership import ELASTICWORKER_LABEL

log = logging.getLogger("controllers.metrics.adapter")

DEFAULT_PORT = 6443
DEFAULT_WINDOW = 3  # seconds: a reading summarises at most one collector interval


class BadSelector(ValueError):
    pass


# --- readings ------------------------------------------------------------------------------------


class Readings:
    """Async reads of the collector's keys; values older than `max_age` (when > 0) are missing."""

    def __init__(self, redis: Any, max_age: float = 0.0, clock: Callable[[], float] = time.time):
        self.redis = redis
        self.max_age = max_age
        self.clock = clock

    def _fresh(self, reading: Reading | None) -> Reading | None:
        if reading is None or self.max_age <= 0:
            return reading
        return reading if reading.fresh(self.clock(), self.max_age) else None

    async def get(self, key: str) -> Reading | None:
        return self._fresh(store.decode(await self.redis.get(key)))

    async def get_many(self, keys: list[str]) -> list[Reading | None]:
        if not keys:
            return []
        raws = await self.redis.mget(keys)
        return [self._fresh(store.decode(raw)) for raw in raws]

    async def scan_names(self, pattern: str, head: str, tail: str) -> list[str]:
        names = set()
        async for key in self.redis.scan_iter(match=pattern, count=500):
            text = key.decode() if isinstance(key, bytes) else key
            if text.startswith(head) and text.endswith(tail):
                name = text[len(head) : len(text) - len(tail)]
                if name and "/" not in name:
                    names.add(name)
        return sorted(names)

    async def members(self, namespace: str, elastic_worker: str) -> frozenset[str] | None:
        return store.decode_members(
            await self.redis.get(store.members_key(namespace, elastic_worker))
        )

    async def ping(self) -> bool:
        return bool(await self.redis.ping())


# --- which pods a `*` request means --------------------------------------------------------------


class PodLister(Protocol):
    async def pods(self, namespace: str, selector: str, metric: str) -> list[str]: ...


def parse_equality_selector(selector: str) -> dict[str, str]:
    """`a=b,c==d` -> {a: b, c: d}; anything else (sets, !=, existence) -> BadSelector."""
    wanted: dict[str, str] = {}
    for term in (t.strip() for t in selector.split(",")):
        if not term:
            continue
        key, sep, value = term.replace("==", "=").partition("=")
        if not sep or "!" in key or not key.strip() or " in " in term or " notin " in term:
            raise BadSelector(f"unsupported label selector term {term!r}")
        wanted[key.strip()] = value.strip()
    return wanted


class RedisPodLister:
    """Pods that have the metric in Redis; a selector is only the ElasticWorker label (or none)."""

    def __init__(self, readings: Readings) -> None:
        self.readings = readings

    async def pods(self, namespace: str, selector: str, metric: str) -> list[str]:
        wanted = parse_equality_selector(selector)
        head, tail = f"{store.PREFIX}/{namespace}/pods/", f"/{metric}"
        names = await self.readings.scan_names(store.pod_key_pattern(namespace, metric), head, tail)
        if not wanted:
            return names
        if set(wanted) != {ELASTICWORKER_LABEL}:
            raise BadSelector(
                f"without the Kubernetes API only `{ELASTICWORKER_LABEL}=<name>` is understood"
            )
        members = await self.readings.members(namespace, wanted[ELASTICWORKER_LABEL])
        return [n for n in names if members is not None and n in members]


class KubePodLister:
    """Pods from the Kubernetes API by label selector (the client runs in a thread)."""

    def __init__(self, core_v1: Any) -> None:
        self.core_v1 = core_v1

    async def pods(self, namespace: str, selector: str, metric: str) -> list[str]:
        def _list() -> list[str]:
            result = self.core_v1.list_namespaced_pod(
                namespace, label_selector=selector or None, _request_timeout=5
            )
            return sorted(p.metadata.name for p in result.items or ())

        return await asyncio.get_running_loop().run_in_executor(None, _list)


# --- authentication and authorization ------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    user: str
    groups: tuple[str, ...] = ()
    extra: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Attributes:
    """What a request asks for, as a SubjectAccessReview sees it."""

    path: str
    namespace: str | None = None
    resource: str | None = None
    name: str | None = None
    subresource: str | None = None


class Auth(Protocol):
    async def allow(self, request: web.Request, attrs: Attributes) -> tuple[int, str]:
        """(0, "") to go on; else (401 or 403, message)."""
        ...


class NoAuth:
    async def allow(self, request: web.Request, attrs: Attributes) -> tuple[int, str]:
        return 0, ""


@dataclass
class RequestHeaderConfig:
    """`kube-system/extension-apiserver-authentication`, as the API server publishes it."""

    client_ca: str = ""  # PEM: client certificates of users
    requestheader_ca: str = ""  # PEM: the aggregator's front-proxy client certificate
    allowed_names: tuple[str, ...] = ()
    username_headers: tuple[str, ...] = ("X-Remote-User",)
    group_headers: tuple[str, ...] = ("X-Remote-Group",)
    extra_prefixes: tuple[str, ...] = ("X-Remote-Extra-",)

    @classmethod
    def from_configmap(cls, data: dict[str, str]) -> RequestHeaderConfig:
        def names(key: str, default: tuple[str, ...]) -> tuple[str, ...]:
            raw = data.get(key)
            return tuple(json.loads(raw)) if raw else default

        return cls(
            client_ca=data.get("client-ca-file", ""),
            requestheader_ca=data.get("requestheader-client-ca-file", ""),
            allowed_names=names("requestheader-allowed-names", ()),
            username_headers=names("requestheader-username-headers", ("X-Remote-User",)),
            group_headers=names("requestheader-group-headers", ("X-Remote-Group",)),
            extra_prefixes=names("requestheader-extra-headers-prefix", ("X-Remote-Extra-",)),
        )

    @property
    def verify_pem(self) -> str:
        return "\n".join(p for p in (self.requestheader_ca, self.client_ca) if p.strip())


def _load_pem_certs(pem: str) -> list[Any]:
    from cryptography import x509

    return x509.load_pem_x509_certificates(pem.encode()) if pem.strip() else []


class DelegatedAuth:
    """Authentication and authorization delegated to the Kubernetes API server."""

    def __init__(
        self,
        config: RequestHeaderConfig,
        api_client: Any,
        cache_seconds: float = 10.0,
        deny_cache_seconds: float = 2.0,
    ):
        from kubernetes import client

        self.config = config
        self._front_proxy_cas = _load_pem_certs(config.requestheader_ca)
        self._client_cas = _load_pem_certs(config.client_ca)
        self._authn = client.AuthenticationV1Api(api_client)
        self._authz = client.AuthorizationV1Api(api_client)
        self._client = client
        self.cache_seconds = cache_seconds
        self.deny_cache_seconds = deny_cache_seconds
        self._cache: dict[Any, tuple[float, Any]] = {}

    async def allow(self, request: web.Request, attrs: Attributes) -> tuple[int, str]:
        identity = await self.authenticate(request)
        if identity is None:
            return 401, "Unauthorized"
        if await self.authorize(identity, attrs):
            return 0, ""
        return 403, f'user "{identity.user}" cannot get {attrs.path}'

    # -- authentication --

    async def authenticate(self, request: web.Request) -> Identity | None:
        cert = _peer_certificate(request)
        if cert is not None:
            if any(_issued_by(cert, ca) for ca in self._front_proxy_cas):
                return self._from_headers(request, cert)
            if any(_issued_by(cert, ca) for ca in self._client_cas):
                return _from_certificate(cert)
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            return await self._token_review(header[7:].strip())
        return None

    def _from_headers(self, request: web.Request, cert: Any) -> Identity | None:
        from cryptography.x509.oid import NameOID

        cn = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        if self.config.allowed_names and not set(cn) & set(self.config.allowed_names):
            return None
        user = next(
            (request.headers[h] for h in self.config.username_headers if request.headers.get(h)),
            None,
        )
        if not user:
            return None
        groups = tuple(
            g for h in self.config.group_headers for g in request.headers.getall(h, ()) if g
        )
        extra: dict[str, list[str]] = {}
        for prefix in self.config.extra_prefixes:
            for name, value in request.headers.items():
                if name.lower().startswith(prefix.lower()):
                    extra.setdefault(name[len(prefix) :].lower(), []).append(value)
        return Identity(user, groups, extra)

    async def _token_review(self, token: str) -> Identity | None:
        key = ("token", token)
        cached = self._cached(key)
        if cached is not None:
            return cached or None
        c = self._client
        review = c.V1TokenReview(spec=c.V1TokenReviewSpec(token=token))

        def _call() -> Any:
            return self._authn.create_token_review(review, _request_timeout=5)

        try:
            result = await asyncio.get_running_loop().run_in_executor(None, _call)
        except Exception as error:
            log.warning("token review failed: %s", error)
            return None
        status = result.status
        identity: Identity | None = None
        if status is not None and status.authenticated and status.user is not None:
            user = status.user
            identity = Identity(user.username, tuple(user.groups or ()), dict(user.extra or {}))
        self._remember(key, identity or False)
        return identity

    # -- authorization --

    async def authorize(self, identity: Identity, attrs: Attributes) -> bool:
        key = (identity.user, identity.groups, json.dumps(identity.extra, sort_keys=True), attrs)
        cached = self._cached(key)
        if cached is not None:
            return bool(cached)
        c = self._client
        if attrs.resource is None:
            spec_attrs: dict[str, Any] = {
                "non_resource_attributes": c.V1NonResourceAttributes(path=attrs.path, verb="get")
            }
        else:
            spec_attrs = {
                "resource_attributes": c.V1ResourceAttributes(
                    group=wire.GROUP,
                    version=wire.VERSION,
                    resource=attrs.resource,
                    subresource=attrs.subresource,
                    name=attrs.name,
                    namespace=attrs.namespace,
                    verb="get",
                )
            }
        review = c.V1SubjectAccessReview(
            spec=c.V1SubjectAccessReviewSpec(
                user=identity.user,
                groups=list(identity.groups),
                extra=identity.extra or None,
                **spec_attrs,
            )
        )

        def _call() -> Any:
            return self._authz.create_subject_access_review(review, _request_timeout=5)

        try:
            result = await asyncio.get_running_loop().run_in_executor(None, _call)
        except Exception as error:
            log.warning("subject access review failed: %s", error)
            return False
        allowed = bool(result.status and result.status.allowed)
        self._remember(key, allowed)
        return allowed

    def _cached(self, key: Any) -> Any:
        hit = self._cache.get(key)
        if hit is None:
            return None
        ttl = self.cache_seconds if hit[1] else self.deny_cache_seconds
        return hit[1] if time.monotonic() - hit[0] <= ttl else None

    def _remember(self, key: Any, value: Any) -> None:
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (time.monotonic(), value)


def _peer_certificate(request: web.Request) -> Any:
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    from cryptography import x509

    return x509.load_der_x509_certificate(der)


def _issued_by(cert: Any, ca: Any) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except Exception:
        return False
    return True


def _from_certificate(cert: Any) -> Identity | None:
    from cryptography.x509.oid import NameOID

    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cn:
        return None
    groups = tuple(
        str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    )
    return Identity(str(cn[0].value), groups)


# --- the HTTP application ------------------------------------------------------------------------


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def _not_found(resource: str, name: str, message: str) -> web.Response:
    details = {"name": name, "group": wire.GROUP, "kind": resource}
    return _json(wire.status(404, "NotFound", message, details), 404)


@dataclass
class AdapterConfig:
    window_seconds: int | None = DEFAULT_WINDOW


def make_app(
    readings: Readings,
    lister: PodLister,
    auth: Auth | None = None,
    config: AdapterConfig | None = None,
) -> web.Application:
    auth = auth or NoAuth()
    config = config or AdapterConfig()
    app = web.Application()

    def guarded(
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        attributes: Callable[[web.Request], Attributes],
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def run(request: web.Request) -> web.StreamResponse:
            attrs = attributes(request)
            code, message = await auth.allow(request, attrs)
            if code:
                reason = "Unauthorized" if code == 401 else "Forbidden"
                return _json(wire.status(code, reason, message), code)
            return await handler(request)

        return run

    def non_resource(request: web.Request) -> Attributes:
        return Attributes(path=request.path)

    def metric_attrs(request: web.Request) -> Attributes:
        m = request.match_info
        name = m["name"]
        return Attributes(
            path=request.path,
            namespace=m["namespace"],
            resource=m["resource"],
            name=None if name == "*" else name,
            subresource=m["metric"],
        )

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(request: web.Request) -> web.Response:
        try:
            ok = await asyncio.wait_for(readings.ping(), timeout=2)
        except Exception as error:
            return web.Response(status=503, text=f"redis: {error}")
        return web.Response(text="ok" if ok else "redis: no answer", status=200 if ok else 503)

    async def group(request: web.Request) -> web.Response:
        return _json(wire.api_group())

    async def discovery(request: web.Request) -> web.Response:
        return _json(wire.resource_list())

    async def metric(request: web.Request) -> web.Response:
        m = request.match_info
        namespace, name, metric_name = m["namespace"], m["name"], m["metric"]
        resource = _canonical(m["resource"])
        if resource is None or metric_name not in wire.RESOURCES[resource][2]:
            message = f'the server could not find the metric "{metric_name}" for {m["resource"]}'
            return _not_found(m["resource"], name, message)
        selector_text = request.query.get("labelSelector", "")
        if name == "*":
            try:
                names = await _list_names(
                    readings, lister, namespace, resource, selector_text, metric_name
                )
            except BadSelector as error:
                return _json(wire.status(400, "BadRequest", str(error)), 400)
            keys = [_key(namespace, resource, n, metric_name) for n in names]
            values = await readings.get_many(keys)
            items = [
                wire.metric_value(resource, namespace, n, metric_name, r, config.window_seconds)
                for n, r in zip(names, values, strict=True)
                if r is not None
            ]
            return _json(wire.metric_value_list(items))
        reading = await readings.get(_key(namespace, resource, name, metric_name))
        if reading is None:
            message = f'{metric_name} of {resource} "{namespace}/{name}": no fresh sample'
            return _not_found(resource, name, message)
        item = wire.metric_value(
            resource, namespace, name, metric_name, reading, config.window_seconds
        )
        return _json(wire.metric_value_list([item]))

    base = wire.BASE_PATH
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/livez", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get(f"/apis/{wire.GROUP}", guarded(group, non_resource))
    app.router.add_get(base, guarded(discovery, non_resource))
    app.router.add_get(
        base + "/namespaces/{namespace}/{resource}/{name}/{metric}", guarded(metric, metric_attrs)
    )
    return app


def _canonical(resource: str) -> str | None:
    if resource in wire.RESOURCES:
        return resource
    if resource in ("elasticworkers", "elasticworker"):
        return wire.EW_RESOURCE
    if resource == "pod":
        return "pods"
    return None


def _key(namespace: str, resource: str, name: str, metric: str) -> str:
    if resource == "pods":
        return store.pod_key(namespace, name, metric)
    return store.cluster_key(namespace, name, metric)


async def _list_names(
    readings: Readings,
    lister: PodLister,
    namespace: str,
    resource: str,
    selector: str,
    metric: str,
) -> list[str]:
    if resource == "pods":
        return await lister.pods(namespace, selector, metric)
    if selector.strip():
        raise BadSelector("a label selector is not supported for elasticworkers")
    head, tail = f"{store.PREFIX}/{namespace}/elasticworkers/", f"/{metric}"
    pattern = store.glob_escape(head) + "*" + store.glob_escape(tail)
    return await readings.scan_names(pattern, head, tail)


# --- command line --------------------------------------------------------------------------------


def serving_ssl_context(cert: str, key: str, client_ca_pem: str = "") -> ssl.SSLContext:
    """TLS for serving; client certificates are verified against `client_ca_pem` when offered."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if client_ca_pem.strip():
        context.load_verify_locations(cadata=client_ca_pem)
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def parse_args(argv: Iterable[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="python -m controllers.metrics.adapter", description=__doc__)
    p.add_argument("--redis-url", default=env("ELASTIC_AIRFLOW_REDIS_URL"))
    p.add_argument("--host", default=None, help="bind address (0.0.0.0; 127.0.0.1 if plain)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--plain-http", action="store_true", help="no TLS, no auth (tests)")
    p.add_argument("--authentication", choices=("delegated", "none"), default="delegated")
    kube = p.add_mutually_exclusive_group()
    kube.add_argument("--kubeconfig")
    kube.add_argument("--in-cluster", action="store_true")
    p.add_argument("--pod-source", choices=("kube", "redis"), default=None)
    p.add_argument("--max-age", type=float, default=0.0, help="older samples are missing (0: TTL)")
    p.add_argument("--window-seconds", type=int, default=DEFAULT_WINDOW)
    p.add_argument("--log-level", default=env("LOG_LEVEL", "INFO"))
    args = p.parse_args(list(argv) if argv is not None else None)
    if not args.redis_url:
        p.error("--redis-url (or ELASTIC_AIRFLOW_REDIS_URL) is required")
    if not args.plain_http and not (args.tls_cert and args.tls_key):
        p.error("--tls-cert and --tls-key are required (or --plain-http for tests)")
    if args.host is None:
        args.host = "127.0.0.1" if args.plain_http else "0.0.0.0"
    if args.in_cluster is False and not args.kubeconfig and env("KUBERNETES_SERVICE_HOST"):
        args.in_cluster = True
    has_kube = bool(args.kubeconfig or args.in_cluster)
    if args.pod_source is None:
        args.pod_source = "kube" if has_kube else "redis"
    if args.pod_source == "kube" and not has_kube:
        p.error("--pod-source kube needs --kubeconfig or --in-cluster")
    if args.plain_http:
        args.authentication = "none"
    elif args.authentication == "delegated" and not has_kube:
        p.error("delegated authentication needs --kubeconfig or --in-cluster")
    return args


def _api_client(args: argparse.Namespace) -> Any:
    from kubernetes import client, config

    if args.kubeconfig:
        return config.new_client_from_config(config_file=args.kubeconfig)
    config.load_incluster_config()
    return client.ApiClient()


def main(argv: Iterable[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    import redis.asyncio as aioredis

    redis = aioredis.Redis.from_url(args.redis_url, socket_timeout=3, socket_connect_timeout=3)
    readings = Readings(redis, args.max_age)
    api = _api_client(args) if (args.kubeconfig or args.in_cluster) else None
    lister: PodLister
    if args.pod_source == "kube":
        from kubernetes import client

        lister = KubePodLister(client.CoreV1Api(api))
    else:
        lister = RedisPodLister(readings)
    auth: Auth = NoAuth()
    context = None
    if not args.plain_http:
        client_ca = ""
        if args.authentication == "delegated":
            from kubernetes import client

            cm = client.CoreV1Api(api).read_namespaced_config_map(
                "extension-apiserver-authentication", "kube-system", _request_timeout=10
            )
            header_config = RequestHeaderConfig.from_configmap(dict(cm.data or {}))
            auth = DelegatedAuth(header_config, api)
            client_ca = header_config.verify_pem
        context = serving_ssl_context(args.tls_cert, args.tls_key, client_ca)
    app = make_app(readings, lister, auth, AdapterConfig(args.window_seconds))

    async def _close_redis(app: web.Application) -> None:
        await redis.aclose()

    app.on_cleanup.append(_close_redis)
    log.info(
        "serving %s on %s://%s:%d (auth: %s, pods from %s)",
        wire.GROUP_VERSION,
        "http" if args.plain_http else "https",
        args.host,
        args.port,
        args.authentication,
        args.pod_source,
    )
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        ssl_context=context,
        print=None,
        access_log=log if args.log_level.upper() == "DEBUG" else None,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

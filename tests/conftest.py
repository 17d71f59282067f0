"""Shared fixtures: an S3 endpoint served by moto on 127.0.0.1, reached by s3fs over HTTP."""

import gc
import os
import uuid

import fsspec
import pytest
import s3fs
from moto.server import ThreadedMotoServer


def pytest_sessionfinish(session, exitstatus):
    """Releases what this process kept for its whole life while the interpreter is still whole.

    A CI run once passed every test and then died of SIGSEGV on exit (exit code 139). Native objects
    left to interpreter finalization are a known cause of that (onnxruntime sessions among them), so
    the process-wide DNSMOS sessions and any Ray connection a test left open go here instead.
    """
    import ray

    from ansray.metrics.dnsmos import process_dnsmos

    process_dnsmos.cache_clear()
    if ray.is_initialized():
        ray.shutdown()
    gc.collect()


FAKE_AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_endpoint():
    """URL of a moto S3 server; AWS_* point at it, so nothing can reach a real AWS address."""
    with pytest.MonkeyPatch.context() as environment:
        for name, value in FAKE_AWS_ENVIRONMENT.items():
            environment.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            environment.delenv(name, raising=False)
        for name in ("NO_PROXY", "no_proxy"):  # urllib prefers the lower-case one when both exist
            environment.setenv(name, ",".join(filter(None, [os.environ.get(name), "127.0.0.1"])))
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        # Clients built without storage_options (botocore >= 1.31 reads this) land on moto too.
        environment.setenv("AWS_ENDPOINT_URL", url)
        s3fs.S3FileSystem.clear_instance_cache()  # an instance made before may hold other settings
        try:
            yield url
        finally:
            s3fs.S3FileSystem.clear_instance_cache()
            server.stop()


@pytest.fixture(scope="session")
def s3_storage_options(s3_endpoint):
    """storage_options for s3fs that reach the moto endpoint."""
    return {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"},
    }


@pytest.fixture(scope="session")
def _s3_admin(s3_storage_options):
    return s3fs.S3FileSystem(skip_instance_cache=True, **s3_storage_options)


@pytest.fixture
def s3_bucket(_s3_admin):
    """A fresh, empty bucket on the moto endpoint, as `s3://name`."""
    name = f"test-{uuid.uuid4().hex[:16]}"
    # s3fs's mkdir would send LocationConstraint=us-east-1, which S3 (and moto) refuse.
    _s3_admin.call_s3("create_bucket", Bucket=name)
    return f"s3://{name}"


@pytest.fixture(params=["local", "memory", "s3"])
def storage_root(request, tmp_path):
    """(root URI, storage_options) of an empty folder on a local disk, in memory://, and on S3."""
    if request.param == "local":
        yield str(tmp_path), None
    elif request.param == "memory":
        root = f"memory://test-{uuid.uuid4().hex[:16]}"
        yield root, None
        memory = fsspec.filesystem("memory")
        if memory.exists(root):
            memory.rm(root, recursive=True)
    else:
        yield request.getfixturevalue("s3_bucket"), request.getfixturevalue("s3_storage_options")

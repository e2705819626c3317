"""Pytest fixtures for a real S3 endpoint over HTTP: moto's threaded server on a free port.

Import them into a conftest (``from tests.plugins.s3 import *`` or
``pytest_plugins = ["tests.plugins.s3"]``). Nothing here patches boto3: the code under test talks
HTTP to ``127.0.0.1`` exactly as it would to MinIO or AWS.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import NamedTuple

import boto3
import pytest
from moto.server import ThreadedMotoServer

__all__ = ["S3Bucket", "moto_endpoint", "s3_bucket", "s3_client"]

# Dummy credentials: moto accepts any, and fixed ones keep a developer's real AWS profile (and
# the EC2 metadata lookup) out of the tests.
_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}
_UNSET = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL")


class S3Bucket(NamedTuple):
    """A fresh bucket: ``url`` is ``s3://bucket/prefix`` for :func:`bonebase.storage.open_store`."""

    url: str
    endpoint_url: str
    bucket: str
    prefix: str


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """Start moto's S3 server on 127.0.0.1 (free port) once per session; yields its URL."""
    patch = pytest.MonkeyPatch()
    for name, value in _ENV.items():
        patch.setenv(name, value)
    for name in _UNSET:
        patch.delenv(name, raising=False)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        patch.undo()


@pytest.fixture(scope="session")
def s3_client(moto_endpoint: str):
    """A plain boto3 client on the moto server, for arranging and inspecting state in tests."""
    return boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")


@pytest.fixture
def s3_bucket(moto_endpoint: str, s3_client) -> Iterator[S3Bucket]:
    """A new, empty bucket per test (removed afterwards) with a prefix inside it."""
    name = f"bonebase-test-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    try:
        yield S3Bucket(
            url=f"s3://{name}/objects",
            endpoint_url=moto_endpoint,
            bucket=name,
            prefix="objects",
        )
    finally:
        # moto keeps objects in memory for the whole session: empty the bucket.
        paginator = s3_client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=name):
            for item in page.get("Contents", []):
                s3_client.delete_object(Bucket=name, Key=item["Key"])
        s3_client.delete_bucket(Bucket=name)

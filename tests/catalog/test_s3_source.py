"""Feeds in an S3 bucket (moto_server speaking the S3 API over HTTP on loopback)."""

import uuid

import boto3
import pytest

from ysh.catalog import job

from ..conftest import query
from .feeds_fixture import write_feeds

pytestmark = pytest.mark.integration

# moto accepts any credentials; these are test-only placeholders, not secrets.
ACCESS_KEY, SECRET_KEY = "testing", "testing"


@pytest.fixture()
def bucket(s3_server, tmp_path):
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1",
                          aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    name = f"ysh-landing-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=name)
    for path in write_feeds(tmp_path / "feeds").values():
        client.upload_file(str(path), name, f"catalog/{path.name}")
    client.put_object(Bucket=name, Key="other/ignored.csv", Body=b"sku;preco\nX;1\n")
    return client, name


def s3_source(endpoint, bucket_name):
    return job.S3Source(bucket=bucket_name, prefix="catalog/", endpoint=endpoint, region="us-east-1",
                        access_key=ACCESS_KEY, secret_key=SECRET_KEY)


def test_feeds_in_s3_land_in_postgres(s3_server, bucket, warehouse):
    _, name = bucket
    report = job.run_static(s3=s3_source(s3_server, name), warehouse=warehouse, reconcile_after=True)
    assert report.files == 3
    assert query(warehouse, "SELECT distributor, count(*) FROM items_normalized GROUP BY 1 ORDER BY 1") == [
        ("energia_verde", 2), ("fotovolt", 1), ("sol_nascente", 2)]
    sources = {s for (s,) in query(warehouse, "SELECT DISTINCT source_file FROM items_normalized")}
    assert all(s.startswith("catalog/") for s in sources), sources
    # the object's modification date is the feed's date: the 2023 registration is valid
    assert query(warehouse, "SELECT inmetro_status FROM items_normalized WHERE sku = 'SN001'") == [("ok",)]


def test_a_removed_object_is_pruned_on_the_next_full_run(s3_server, bucket, warehouse):
    client, name = bucket
    job.run_static(s3=s3_source(s3_server, name), warehouse=warehouse, reconcile_after=True)
    client.delete_object(Bucket=name, Key="catalog/fotovolt.jsonl")
    job.run_static(s3=s3_source(s3_server, name), warehouse=warehouse, reconcile_after=True)
    assert query(warehouse, "SELECT count(*) FROM items_normalized WHERE distributor = 'fotovolt'") == [(0,)]
    assert query(warehouse, "SELECT count(*) FROM items_normalized") == [(4,)]

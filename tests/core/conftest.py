from tests.s3 import object_store, seaweedfs  # noqa: F401  (fixtures: a real S3 server, a store per test)

"""The Pinpoint- and SESv2-compatible REST API: routing and (de)serialisation from botocore's models, SigV4."""

"""Event source mappings through Lambda's API, driven by botocore and the AWS
CLI against `herald serve` with a config file naming a Redis broker: create
(with a filter), the records reach an HTTP function in Python, list, get,
update (disable: entries wait; enable: they flow), delete, and Lambda's
exceptions for bad input.

Run by scripts/test (HERALD_BIN names the binary); needs Redis on
127.0.0.1:6379 and `redis-cli`."""

import http.server
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
import unittest
import uuid

from botocore.exceptions import ClientError

from test_admin import HERALD, make_client, stop

KEY_ID = "AKIAHERALDESMTEST001"
SECRET = "esm-test-secret-0000000000000000000000"
REGION = "us-east-1"

CONFIG = f"""
[[iam_credentials]]
access_key_id = "{KEY_ID}"
secret_access_key = "{SECRET}"
principal = "arn:aws:iam::000000000000:user/ops"
allow = [{{ actions = ["admin"] }}]
[admin]
listen = "127.0.0.1:0"
[[channel_namespaces]]
name = "esm"
[[event_sources]]
arn = "arn:aws:redis:{REGION}:000000000000:stream/*"
url = "redis://127.0.0.1:6379"
"""


class Batches(http.server.BaseHTTPRequestHandler):
    """The function: every batch it gets goes to a queue."""
    got = queue.Queue()

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        Batches.got.put(body)
        out = b"{}"
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


def start_with_config(data_dir):
    path = os.path.join(data_dir, "herald.toml")
    with open(path, "w") as f:
        f.write(CONFIG)
    proc = subprocess.Popen(
        [HERALD, "serve", "--listen", "127.0.0.1:0", "--config", path, "--data", data_dir],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    admin = None
    for line in proc.stdout:
        if line.strip().startswith("admin:"):
            admin = line.split()[1]
        if line.startswith("Ready"):
            break
    return {"proc": proc, "admin": admin, "region": REGION, "key_id": KEY_ID, "secret": SECRET}


def xadd(key, **fields):
    args = ["redis-cli", "-h", "127.0.0.1", "XADD", key, "*"]
    for k, v in fields.items():
        args += [k, str(v)]
    subprocess.run(args, check=True, capture_output=True, timeout=10)


class EventSourceMappings(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.data = tempfile.mkdtemp(prefix="herald-esm-")
        cls.server = start_with_config(cls.data)
        cls.lam = make_client(cls.server, "lambda")
        cls.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Batches)
        threading.Thread(target=cls.http.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{cls.http.server_address[1]}/"
        cls.lam.create_function(FunctionName="sink", Runtime="python3.13", Role="r", Handler="app.handler",
                                Code={}, Environment={"Variables": {"HERALD_FUNCTION_URL": url}})

    @classmethod
    def tearDownClass(cls):
        cls.http.shutdown()
        stop(cls.server)
        shutil.rmtree(cls.data, ignore_errors=True)

    def error(self, call):
        with self.assertRaises(ClientError) as caught:
            call()
        e = caught.exception.response["Error"]
        return e["Code"], e.get("Message", "")

    def next_batch(self):
        return Batches.got.get(timeout=10)["Records"]

    def test_create_list_update_delete(self):
        stream = f"esm-boto-{uuid.uuid4().hex[:8]}"
        arn = f"arn:aws:redis:{REGION}:000000000000:stream/{stream}"
        created = self.lam.create_event_source_mapping(
            EventSourceArn=arn, FunctionName="sink", StartingPosition="TRIM_HORIZON", BatchSize=5,
            FilterCriteria={"Filters": [{"Pattern": json.dumps({"data": {"keep": ["yes"]}})}]},
            MetricsConfig={"Metrics": ["EventCount"]}, Tags={"team": "ops"})
        uid = created["UUID"]
        self.assertEqual(created["State"], "Creating")
        self.assertEqual(created["BatchSize"], 5)
        self.assertEqual(created["MaximumRetryAttempts"], -1)
        self.assertTrue(created["FunctionArn"].endswith(":function:sink"))
        self.assertEqual(created["EventSourceMappingArn"],
                         f"arn:aws:lambda:{REGION}:000000000000:event-source-mapping:{uid}")
        xadd(stream, n=1, keep="no")
        xadd(stream, n=2, keep="yes")
        batch = self.next_batch()
        self.assertEqual([r["redis"]["fields"]["n"] for r in batch], ["2"])

        # The result is recorded once the invocation returned: wait for it.
        deadline = time.monotonic() + 10
        while True:
            got = self.lam.get_event_source_mapping(UUID=uid)
            if got["LastProcessingResult"] == "OK" or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        self.assertEqual((got["State"], got["LastProcessingResult"]), ("Enabled", "OK"))
        listed = self.lam.list_event_source_mappings(FunctionName="sink")["EventSourceMappings"]
        self.assertIn(uid, [m["UUID"] for m in listed])
        self.assertEqual(self.lam.list_event_source_mappings(EventSourceArn=arn + "x")["EventSourceMappings"], [])

        # Disabled: entries wait in the stream; enabled again, they flow.
        self.assertEqual(self.lam.update_event_source_mapping(UUID=uid, Enabled=False)["State"], "Disabling")
        self.assertEqual(self.lam.get_event_source_mapping(UUID=uid)["State"], "Disabled")
        xadd(stream, n=3, keep="yes")
        # Nothing is invoked while disabled (the entry would come within a
        # poll, well under this bound, if the mapping still ran).
        with self.assertRaises(queue.Empty):
            Batches.got.get(timeout=1.5)
        updated = self.lam.update_event_source_mapping(UUID=uid, Enabled=True, BatchSize=7)
        self.assertEqual((updated["State"], updated["BatchSize"]), ("Enabling", 7))
        self.assertEqual([r["redis"]["fields"]["n"] for r in self.next_batch()], ["3"])

        # The same source and function twice: Lambda's conflict.
        code, msg = self.error(lambda: self.lam.create_event_source_mapping(
            EventSourceArn=arn, FunctionName="sink", StartingPosition="LATEST"))
        self.assertEqual(code, "ResourceConflictException")
        self.assertIn(uid, msg)

        self.assertEqual(self.lam.delete_event_source_mapping(UUID=uid)["State"], "Deleting")
        code, _ = self.error(lambda: self.lam.get_event_source_mapping(UUID=uid))
        self.assertEqual(code, "ResourceNotFoundException")
        subprocess.run(["redis-cli", "-h", "127.0.0.1", "DEL", stream], check=True, capture_output=True)

    def test_bad_input_gets_lambdas_exceptions(self):
        arn = f"arn:aws:redis:{REGION}:000000000000:stream/bad"
        cases = [
            (dict(EventSourceArn=arn, FunctionName="sink"), "InvalidParameterValueException", "StartingPosition"),
            (dict(EventSourceArn=arn, FunctionName="sink", StartingPosition="LATEST", BatchSize=20000),
             "InvalidParameterValueException", "batchSize"),
            (dict(EventSourceArn=arn, FunctionName="sink", StartingPosition="LATEST",
                  FilterCriteria={"Filters": [{"Pattern": "{\"data\": 1}"}]}),
             "InvalidParameterValueException", "filter pattern"),
            (dict(EventSourceArn=arn, FunctionName="nosuch", StartingPosition="LATEST"),
             "ResourceNotFoundException", "nosuch"),
            (dict(EventSourceArn="arn:aws:nats:us-east-1:000000000000:stream/X", FunctionName="sink",
                  StartingPosition="LATEST"), "InvalidParameterValueException", "event_sources"),
        ]
        for kwargs, code, part in cases:
            got, msg = self.error(lambda: self.lam.create_event_source_mapping(**kwargs))
            self.assertEqual(got, code, msg)
            self.assertIn(part, msg)
        self.assertEqual(self.error(lambda: self.lam.update_event_source_mapping(
            UUID=str(uuid.uuid4()), Enabled=False))[0], "ResourceNotFoundException")

    def test_the_aws_cli(self):
        aws = os.path.join(os.path.dirname(os.path.realpath(__import__("sys").executable)), "aws")
        env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET,
                   AWS_DEFAULT_REGION=REGION, AWS_CONFIG_FILE="/dev/null",
                   AWS_SHARED_CREDENTIALS_FILE="/dev/null")

        def cli(*args):
            run = subprocess.run([aws, "lambda", *args, "--endpoint-url", self.server["admin"], "--output", "json"],
                                 env=env, capture_output=True, text=True, timeout=60)
            self.assertEqual(run.returncode, 0, run.stderr)
            return json.loads(run.stdout) if run.stdout.strip() else {}

        stream = f"esm-cli-{uuid.uuid4().hex[:8]}"
        m = cli("create-event-source-mapping", "--function-name", "sink", "--starting-position", "LATEST",
                "--event-source-arn", f"arn:aws:redis:{REGION}:000000000000:stream/{stream}")
        self.assertIn(m["UUID"], [x["UUID"] for x in cli("list-event-source-mappings")["EventSourceMappings"]])
        self.assertEqual(cli("update-event-source-mapping", "--uuid", m["UUID"], "--no-enabled")["State"], "Disabling")
        self.assertEqual(cli("delete-event-source-mapping", "--uuid", m["UUID"])["State"], "Deleting")
        subprocess.run(["redis-cli", "-h", "127.0.0.1", "DEL", stream], check=True, capture_output=True)


if __name__ == "__main__":
    unittest.main()

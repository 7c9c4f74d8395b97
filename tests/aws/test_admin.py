"""The admin listener driven by botocore, AWS's own Python client, against
`herald serve` in its development mode: the admin credentials it prints work
as they are, the AppSync reads return AWS's shapes, the endpoint and key they
return work for publishing, and refusals arrive as the exceptions AWS raises.

Run by scripts/test (HERALD_BIN names the binary)."""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import unittest
import urllib.error
import urllib.request

import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError

HERALD = os.environ.get("HERALD_BIN", "target/debug/herald")


def start(data_dir):
    """`herald serve` in its development mode; the banner's facts."""
    proc = subprocess.Popen(
        [HERALD, "serve", "--listen", "127.0.0.1:0", "--data", data_dir],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    banner = []
    for line in proc.stdout:
        banner.append(line.rstrip("\n"))
        if line.startswith("Ready"):
            break
    text = "\n".join(banner)
    exports = dict(re.findall(r"export (AWS_[A-Z_]+)=(\S+)", text))
    return {
        "proc": proc,
        "public": re.search(r"^Herald listening on (\S+)$", text, re.M).group(1),
        "admin": re.search(r"admin:\s+(http://\S+)", text).group(1),
        "region": exports["AWS_REGION"],
        "key_id": exports["AWS_ACCESS_KEY_ID"],
        "secret": exports["AWS_SECRET_ACCESS_KEY"],
        "api_key": re.search(r"API key \(generated\): (\S+)", text).group(1),
        "exports": exports,
    }


def stop(server):
    server["proc"].send_signal(signal.SIGTERM)
    server["proc"].send_signal(signal.SIGTERM)
    server["proc"].wait(timeout=20)
    server["proc"].stdout.close()


def make_client(server, service, secret=None, inject_host_prefix=True):
    return botocore.session.get_session().create_client(
        service,
        region_name=server["region"],
        endpoint_url=server["admin"],
        aws_access_key_id=server["key_id"],
        aws_secret_access_key=secret or server["secret"],
        config=Config(retries={"max_attempts": 1}, inject_host_prefix=inject_host_prefix),
    )


def publish(public, key):
    return publish_to(public, key, "/default/botocore")


def publish_to(public, key, channel):
    body = json.dumps({"channel": channel, "events": [json.dumps({"n": 1})]})
    req = urllib.request.Request(
        f"http://{public}/event",
        data=body.encode(),
        headers={"content-type": "application/json", "x-api-key": key},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as e:
        return e.code, None


class AdminApi(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.data = tempfile.mkdtemp(prefix="herald-admin-")
        cls.server = start(cls.data)
        cls.public = cls.server["public"]
        cls.region = cls.server["region"]
        cls.api_key = cls.server["api_key"]

    @classmethod
    def tearDownClass(cls):
        stop(cls.server)
        shutil.rmtree(cls.data, ignore_errors=True)

    def client(self, service, secret=None):
        return make_client(self.server, service, secret)

    def error_code(self, call):
        with self.assertRaises(ClientError) as caught:
            call()
        return caught.exception.response["Error"]["Code"], caught.exception.response["Error"].get("Message", "")

    def test_reads_and_the_endpoint_they_return(self):
        appsync = self.client("appsync")
        apis = appsync.list_apis()["apis"]
        self.assertGreaterEqual(len(apis), 1)
        api_id = apis[0]["apiId"]
        self.assertRegex(api_id, r"^[a-z2-7]{26}$")
        self.assertEqual(apis[0]["eventConfig"]["authProviders"], [{"authType": "API_KEY"}])
        api = appsync.get_api(apiId=api_id)["api"]
        self.assertEqual(api["dns"]["HTTP"], self.public)
        self.assertEqual(api["apiArn"], f"arn:aws:appsync:{self.region}:000000000000:apis/{api_id}")
        namespaces = appsync.list_channel_namespaces(apiId=api_id)["channelNamespaces"]
        self.assertEqual([n["name"] for n in namespaces], ["default"])
        ns = appsync.get_channel_namespace(apiId=api_id, name="default")["channelNamespace"]
        self.assertEqual(ns["publishAuthModes"], [{"authType": "API_KEY"}])
        keys = appsync.list_api_keys(apiId=api_id)["apiKeys"]
        self.assertEqual([k["id"] for k in keys], [self.api_key])
        self.assertEqual(
            appsync.list_tags_for_resource(resourceArn=api["apiArn"])["tags"], {}
        )

        # Publish on the endpoint GetApi returned, with the key ListApiKeys returned.
        status, result = publish(api["dns"]["HTTP"], keys[0]["id"])
        self.assertEqual(status, 200)
        self.assertEqual(len(result["successful"]), 1)

    def test_keys_live(self):
        appsync = self.client("appsync")
        api_id = appsync.list_apis()["apis"][0]["apiId"]
        created = appsync.create_api_key(apiId=api_id, description="from botocore")["apiKey"]
        self.assertTrue(created["id"].startswith("da2-"))
        self.assertEqual(publish(self.public, created["id"])[0], 200)
        updated = appsync.update_api_key(apiId=api_id, id=created["id"], description="renamed")["apiKey"]
        self.assertEqual(updated["description"], "renamed")
        appsync.delete_api_key(apiId=api_id, id=created["id"])
        self.assertEqual(publish(self.public, created["id"])[0], 401)
        code, _ = self.error_code(lambda: appsync.delete_api_key(apiId=api_id, id=created["id"]))
        self.assertEqual(code, "NotFoundException")
        code, _ = self.error_code(lambda: appsync.create_api_key(apiId=api_id, expires=1))
        self.assertEqual(code, "ApiKeyValidityOutOfBoundsException")

    def test_namespaces_live(self):
        appsync = self.client("appsync")
        api_id = appsync.list_apis()["apis"][0]["apiId"]
        ns = appsync.create_channel_namespace(
            apiId=api_id,
            name="fromboto",
            codeHandlers="export function onPublish(ctx) { return ctx.events }",
        )["channelNamespace"]
        self.assertEqual(ns["name"], "fromboto")
        self.assertEqual(ns["publishAuthModes"], [{"authType": "API_KEY"}])
        status, result = publish_to(self.public, self.api_key, "/fromboto/a")
        self.assertEqual(status, 200)
        code, _ = self.error_code(
            lambda: appsync.create_channel_namespace(apiId=api_id, name="fromboto")
        )
        self.assertEqual(code, "ConflictException")
        appsync.update_channel_namespace(
            apiId=api_id, name="fromboto", subscribeAuthModes=[{"authType": "API_KEY"}]
        )
        appsync.delete_channel_namespace(apiId=api_id, name="fromboto")
        self.assertEqual(publish_to(self.public, self.api_key, "/fromboto/a")[0], 400)
        code, _ = self.error_code(lambda: appsync.get_channel_namespace(apiId=api_id, name="fromboto"))
        self.assertEqual(code, "NotFoundException")

    def test_namespace_history_from_tags(self):
        """Channel history through the control plane: the herald:history-*
        tags of CreateChannelNamespace; the namespace then keeps events that
        the history read API returns. Malformed tags, and changing them later,
        are refused."""
        appsync = self.client("appsync")
        api_id = appsync.list_apis()["apis"][0]["apiId"]
        tags = {"herald:history-size": "100", "herald:history-ttl-secs": "300"}
        ns = appsync.create_channel_namespace(apiId=api_id, name="kept", tags=tags)["channelNamespace"]
        self.assertEqual(ns["tags"], tags)
        for _ in range(3):
            self.assertEqual(publish_to(self.public, self.api_key, "/kept/room")[0], 200)
        def read():
            req = urllib.request.Request(f"http://{self.public}/event/history?channel=/kept/room",
                                         headers={"x-api-key": self.api_key})
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.load(r)
        page = read()
        self.assertEqual([e["offset"] for e in page["events"]], [1, 2, 3])
        self.assertEqual(json.loads(page["events"][0]["event"]), {"n": 1})
        code, message = self.error_code(lambda: appsync.create_channel_namespace(
            apiId=api_id, name="halfkept", tags={"herald:history-size": "100"}))
        self.assertEqual(code, "BadRequestException")
        self.assertIn("herald:history-ttl-secs", message)
        code, message = self.error_code(lambda: appsync.create_channel_namespace(
            apiId=api_id, name="badkept", tags={"herald:history-size": "0", "herald:history-ttl-secs": "60"}))
        self.assertEqual((code, "size" in message), ("BadRequestException", True))
        code, _ = self.error_code(lambda: appsync.tag_resource(
            resourceArn=ns["channelNamespaceArn"], tags={"herald:history-size": "5"}))
        self.assertEqual(code, "BadRequestException")
        appsync.delete_channel_namespace(apiId=api_id, name="kept")

    def test_namespace_history_survives_a_restart(self):
        """The tags are stored: after a restart the namespace keeps history again."""
        data = tempfile.mkdtemp(prefix="herald-history-")
        server = start(data)
        try:
            appsync = make_client(server, "appsync")
            api_id = appsync.list_apis()["apis"][0]["apiId"]
            appsync.create_channel_namespace(apiId=api_id, name="kept", tags={
                "herald:history-size": "10", "herald:history-ttl-secs": "60"})
        finally:
            stop(server)
        server = start(data)
        try:
            self.assertEqual(publish_to(server["public"], server["api_key"], "/kept/a")[0], 200)
            req = urllib.request.Request(f"http://{server['public']}/event/history?channel=/kept/a",
                                         headers={"x-api-key": server["api_key"]})
            with urllib.request.urlopen(req, timeout=10) as r:
                page = json.load(r)
            self.assertEqual([e["offset"] for e in page["events"]], [1])
        finally:
            stop(server)
            shutil.rmtree(data, ignore_errors=True)

    def test_a_second_api(self):
        appsync = self.client("appsync")
        event_config = {
            "authProviders": [{"authType": "API_KEY"}],
            "connectionAuthModes": [{"authType": "API_KEY"}],
            "defaultPublishAuthModes": [{"authType": "API_KEY"}],
            "defaultSubscribeAuthModes": [{"authType": "API_KEY"}],
        }
        api = appsync.create_api(name="second", eventConfig=event_config)["api"]
        api_id = api["apiId"]
        got = appsync.get_api(apiId=api_id)["api"]
        self.assertEqual(got["name"], "second")
        self.assertEqual(got["dns"]["HTTP"], f"{self.public}/apis/{api_id}")
        appsync.create_channel_namespace(apiId=api_id, name="default")
        key = appsync.create_api_key(apiId=api_id)["apiKey"]["id"]
        self.assertEqual(publish_to(got["dns"]["HTTP"], key, "/default/a")[0], 200)
        # The first API's key is not the second's.
        self.assertEqual(publish_to(self.public + f"/apis/{api_id}", self.api_key, "/default/a")[0], 401)
        updated = appsync.update_api(
            apiId=api_id, name="second renamed", ownerContact="ops", eventConfig=event_config)["api"]
        self.assertEqual((updated["name"], updated["ownerContact"]), ("second renamed", "ops"))
        self.assertEqual(appsync.get_api(apiId=api_id)["api"]["name"], "second renamed")
        self.assertEqual(publish_to(got["dns"]["HTTP"], key, "/default/a")[0], 200)
        code, _ = self.error_code(lambda: appsync.update_api(apiId=api_id, name="bad/name", eventConfig=event_config))
        self.assertEqual(code, "BadRequestException")
        appsync.delete_api(apiId=api_id)
        code, _ = self.error_code(lambda: appsync.get_api(apiId=api_id))
        self.assertEqual(code, "NotFoundException")

    def test_the_aws_cli_with_the_printed_exports(self):
        """The README's way: the AWS CLI (from PyPI), the development mode's
        printed exports, `--endpoint-url` at the admin listener."""
        aws = os.path.join(os.path.dirname(os.path.realpath(__import__("sys").executable)), "aws")
        env = dict(os.environ, **self.server["exports"],
                   AWS_CONFIG_FILE="/dev/null",
                   AWS_SHARED_CREDENTIALS_FILE="/dev/null")

        def cli(*args, ok=True):
            run = subprocess.run([aws, "appsync", *args, "--endpoint-url", self.server["admin"],
                                  "--output", "json"], env=env, capture_output=True, text=True, timeout=60)
            self.assertEqual(run.returncode == 0, ok, run.stderr)
            if not ok:
                return run.stderr
            return json.loads(run.stdout) if run.stdout.strip() else {}

        api_id = cli("list-apis")["apis"][0]["apiId"]
        key = cli("create-api-key", "--api-id", api_id, "--description", "from the cli")["apiKey"]
        self.assertEqual(key["description"], "from the cli")
        http = cli("get-api", "--api-id", api_id)["api"]["dns"]["HTTP"]
        self.assertEqual(publish_to(http, key["id"], "/default/cli")[0], 200)
        self.assertIn(key["id"], [k["id"] for k in cli("list-api-keys", "--api-id", api_id)["apiKeys"]])
        cli("delete-api-key", "--api-id", api_id, "--id", key["id"])
        self.assertEqual(publish_to(http, key["id"], "/default/cli")[0], 401)
        err = cli("get-api", "--api-id", "nosuchapi", ok=False)
        self.assertIn("NotFoundException", err)

    def test_aws_exceptions(self):
        appsync = self.client("appsync")
        code, message = self.error_code(lambda: appsync.get_api(apiId="nosuchapi"))
        self.assertEqual(code, "NotFoundException")
        self.assertIn("nosuchapi", message)
        code, _ = self.error_code(
            lambda: appsync.get_channel_namespace(apiId=appsync.list_apis()["apis"][0]["apiId"], name="nope")
        )
        self.assertEqual(code, "NotFoundException")
        file_api = appsync.list_apis()["apis"][0]["apiId"]
        code, message = self.error_code(lambda: appsync.delete_api(apiId=file_api))
        self.assertEqual(code, "BadRequestException")
        self.assertIn("configuration file", message)
        code, _ = self.error_code(lambda: self.client("appsync", secret="wrong" * 8).list_apis())
        self.assertEqual(code, "InvalidSignatureException")
        # A JSON 1.1 operation Herald does not serve.
        code, _ = self.error_code(lambda: self.client("events").put_permission(Action="events:PutEvents", Principal="*", StatementId="s"))
        self.assertEqual(code, "UnknownOperationException")

    def test_event_patterns(self):
        """EventBridge's TestEventPattern through botocore: the matcher mappings
        and filtered subscriptions use, with AWS's exceptions."""
        events = self.client("events")
        event = json.dumps({"id": "1", "account": "123456789012", "source": "shop",
                            "time": "2026-11-29T00:00:00Z", "region": "us-east-1", "resources": [],
                            "detail-type": "Order Placed", "detail": {"amount": 3e2, "tier": "Gold"}})
        test = events.test_event_pattern
        self.assertTrue(test(EventPattern=json.dumps(
            {"source": ["shop"], "detail": {"amount": [300], "tier": [{"equals-ignore-case": "gold"}]}}),
            Event=event)["Result"])
        self.assertFalse(test(EventPattern=json.dumps({"detail": {"amount": [{"numeric": ["<", 300]}]}}),
                              Event=event)["Result"])
        code, message = self.error_code(lambda: test(EventPattern='{"detail": {"tier": "Gold"}}', Event=event))
        self.assertEqual(code, "InvalidEventPatternException")
        self.assertIn("detail.tier", message)
        code, message = self.error_code(lambda: test(EventPattern='{"source": ["shop"]}', Event='{"source": "shop"}'))
        self.assertEqual(code, "ValidationException")
        self.assertIn("Parameter Event is not valid", message)
        # And the AWS CLI, as a user would.
        aws = os.path.join(os.path.dirname(os.path.realpath(__import__("sys").executable)), "aws")
        env = dict(os.environ, **self.server["exports"],
                   AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
        run = subprocess.run([aws, "events", "test-event-pattern", "--endpoint-url", self.server["admin"],
                              "--event-pattern", '{"source": ["shop"]}', "--event", event, "--output", "json"],
                             env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(json.loads(run.stdout), {"Result": True})


class KillNine(unittest.TestCase):
    """kill -9 in the middle of a burst of CreateApiKey calls: after a restart
    on the same data directory, every key whose creation was acknowledged is
    listed and works."""

    def test_acknowledged_keys_survive(self):
        data = tempfile.mkdtemp(prefix="herald-kill9-")
        try:
            server = start(data)
            appsync = make_client(server, "appsync")
            api_id = appsync.list_apis()["apis"][0]["apiId"]
            acknowledged = []
            enough = threading.Event()

            def burst():
                for _ in range(200):
                    try:
                        key = appsync.create_api_key(apiId=api_id)["apiKey"]["id"]
                    except Exception:
                        return  # the server is gone
                    acknowledged.append(key)
                    if len(acknowledged) >= 10:
                        enough.set()

            worker = threading.Thread(target=burst)
            worker.start()
            self.assertTrue(enough.wait(timeout=60), "no CreateApiKey was acknowledged")
            server["proc"].kill()  # SIGKILL, mid-burst
            server["proc"].wait(timeout=20)
            server["proc"].stdout.close()
            worker.join(timeout=60)
            self.assertGreaterEqual(len(acknowledged), 10)

            restarted = start(data)
            try:
                appsync = make_client(restarted, "appsync")
                listed = {k["id"] for k in appsync.list_api_keys(apiId=api_id)["apiKeys"]}
                missing = [k for k in acknowledged if k not in listed]
                self.assertEqual(missing, [], "acknowledged keys were lost")
                for key in acknowledged:
                    self.assertEqual(publish(restarted["public"], key)[0], 200)
            finally:
                stop(restarted)
        finally:
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()

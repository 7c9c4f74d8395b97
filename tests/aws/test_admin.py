"""The admin listener driven by botocore, AWS's own Python client, against
`herald serve` in its development mode: the admin credentials it prints work
as they are, the AppSync reads return AWS's shapes, the endpoint and key they
return work for publishing, and refusals arrive as the exceptions AWS raises.

Run by scripts/test (HERALD_BIN names the binary)."""

import json
import os
import re
import signal
import subprocess
import unittest
import urllib.request

import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError

HERALD = os.environ.get("HERALD_BIN", "target/debug/herald")


class AdminApi(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.proc = subprocess.Popen(
            [HERALD, "serve", "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        banner = []
        for line in cls.proc.stdout:
            banner.append(line.rstrip("\n"))
            if line.startswith("Ready"):
                break
        text = "\n".join(banner)
        cls.public = re.search(r"^Herald listening on (\S+)$", text, re.M).group(1)
        cls.admin = re.search(r"admin:\s+(http://\S+)", text).group(1)
        exports = dict(re.findall(r"export (AWS_[A-Z_]+)=(\S+)", text))
        cls.region = exports["AWS_REGION"]
        cls.key_id = exports["AWS_ACCESS_KEY_ID"]
        cls.secret = exports["AWS_SECRET_ACCESS_KEY"]
        cls.api_key = re.search(r"API key \(generated\): (\S+)", text).group(1)

    @classmethod
    def tearDownClass(cls):
        cls.proc.send_signal(signal.SIGTERM)
        cls.proc.send_signal(signal.SIGTERM)
        cls.proc.wait(timeout=20)

    def client(self, service, secret=None):
        return botocore.session.get_session().create_client(
            service,
            region_name=self.region,
            endpoint_url=self.admin,
            aws_access_key_id=self.key_id,
            aws_secret_access_key=secret or self.secret,
            config=Config(retries={"max_attempts": 1}),
        )

    def error_code(self, call):
        with self.assertRaises(ClientError) as caught:
            call()
        return caught.exception.response["Error"]["Code"], caught.exception.response["Error"].get("Message", "")

    def test_reads_and_the_endpoint_they_return(self):
        appsync = self.client("appsync")
        apis = appsync.list_apis()["apis"]
        self.assertEqual(len(apis), 1)
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
        body = json.dumps({"channel": "/default/botocore", "events": [json.dumps({"n": 1})]})
        req = urllib.request.Request(
            f"http://{api['dns']['HTTP']}/event",
            data=body.encode(),
            headers={"content-type": "application/json", "x-api-key": keys[0]["id"]},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            result = json.load(resp)
        self.assertEqual(len(result["successful"]), 1)

    def test_aws_exceptions(self):
        appsync = self.client("appsync")
        code, message = self.error_code(lambda: appsync.get_api(apiId="nosuchapi"))
        self.assertEqual(code, "NotFoundException")
        self.assertIn("nosuchapi", message)
        code, _ = self.error_code(
            lambda: appsync.get_channel_namespace(apiId=appsync.list_apis()["apis"][0]["apiId"], name="nope")
        )
        self.assertEqual(code, "NotFoundException")
        code, message = self.error_code(
            lambda: appsync.create_api(name="other", eventConfig={
                "authProviders": [{"authType": "API_KEY"}],
                "connectionAuthModes": [{"authType": "API_KEY"}],
                "defaultPublishAuthModes": [{"authType": "API_KEY"}],
                "defaultSubscribeAuthModes": [{"authType": "API_KEY"}],
            })
        )
        self.assertEqual(code, "BadRequestException")
        self.assertIn("configuration file", message)
        code, _ = self.error_code(lambda: self.client("appsync", secret="wrong" * 8).list_apis())
        self.assertEqual(code, "InvalidSignatureException")
        # A JSON 1.1 service Herald does not serve yet.
        code, _ = self.error_code(lambda: self.client("events").list_rules())
        self.assertEqual(code, "UnknownOperationException")


if __name__ == "__main__":
    unittest.main()

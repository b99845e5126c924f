"""The IAM policy reader used by preflight for the Ground Truth role and the Lambdas' resource policies."""

from __future__ import annotations

import json
from urllib.parse import quote

from rekfeedback.core import iam_policy as iam

BUCKET_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "arn:aws:s3:::data/*"},
    {"Effect": "Allow", "Action": "lambda:Invoke*", "Resource": "arn:aws:lambda:us-east-1:1:function:pre"},
]}


def test_allow_with_wildcards_and_case_insensitive_actions():
    assert iam.evaluate([BUCKET_POLICY], "s3:GetObject", "arn:aws:s3:::data/images/a.jpg") == iam.ALLOWED
    assert iam.evaluate([BUCKET_POLICY], "S3:getobject", "arn:aws:s3:::data/a.jpg") == iam.ALLOWED
    assert iam.evaluate([BUCKET_POLICY], "lambda:InvokeFunction",
                        "arn:aws:lambda:us-east-1:1:function:pre") == iam.ALLOWED


def test_nothing_matching_is_not_allowed():
    assert iam.evaluate([BUCKET_POLICY], "s3:GetObject", "arn:aws:s3:::other/a.jpg") == iam.NOT_ALLOWED
    assert iam.evaluate([BUCKET_POLICY], "s3:DeleteObject", "arn:aws:s3:::data/a.jpg") == iam.NOT_ALLOWED
    assert iam.evaluate([], "s3:GetObject", "arn:aws:s3:::data/a.jpg") == iam.NOT_ALLOWED


def test_explicit_deny_wins_over_any_allow():
    deny = {"Statement": {"Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::data/secret/*"}}
    assert iam.evaluate([BUCKET_POLICY, deny], "s3:GetObject", "arn:aws:s3:::data/secret/x") == iam.DENIED
    assert iam.evaluate([BUCKET_POLICY, deny], "s3:GetObject", "arn:aws:s3:::data/public/x") == iam.ALLOWED


def test_not_action_and_not_resource():
    doc = {"Statement": [{"Effect": "Allow", "NotAction": "iam:*", "NotResource": "arn:aws:s3:::private/*"}]}
    assert iam.evaluate([doc], "s3:GetObject", "arn:aws:s3:::data/x") == iam.ALLOWED
    assert iam.evaluate([doc], "iam:PassRole", "arn:aws:s3:::data/x") == iam.NOT_ALLOWED
    assert iam.evaluate([doc], "s3:GetObject", "arn:aws:s3:::private/x") == iam.NOT_ALLOWED


def test_conditions_make_a_verdict_conditional():
    doc = {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
                          "Condition": {"StringEquals": {"aws:PrincipalTag/team": "labels"}}}]}
    assert iam.evaluate([doc], "s3:GetObject", "arn:aws:s3:::data/x") == iam.CONDITIONAL


def test_url_encoded_documents_are_read():
    text = quote(json.dumps(BUCKET_POLICY))
    assert iam.evaluate([text], "s3:PutObject", "arn:aws:s3:::data/out/x") == iam.ALLOWED


def test_trust_policy_principals():
    trust = {"Statement": [{"Effect": "Allow", "Principal": {"Service": ["lambda.amazonaws.com",
                                                                       "sagemaker.amazonaws.com"]},
                            "Action": "sts:AssumeRole"}]}
    assert iam.principal_allowed(trust, "sts:AssumeRole", service="sagemaker.amazonaws.com") == iam.ALLOWED
    assert iam.principal_allowed(trust, "sts:AssumeRole", service="glue.amazonaws.com") == iam.NOT_ALLOWED
    other_action = {"Statement": [{"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"},
                                   "Action": "sts:TagSession"}]}
    assert iam.principal_allowed(other_action, "sts:AssumeRole", service="sagemaker.amazonaws.com") == iam.NOT_ALLOWED


def test_resource_policy_naming_the_role():
    policy = json.dumps({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:role/gt"},
                                        "Action": "lambda:InvokeFunction", "Resource": "arn:aws:lambda:::function:f"}]})
    assert iam.principal_allowed(policy, "lambda:InvokeFunction", service="sagemaker.amazonaws.com",
                                 arns=["arn:aws:iam::1:role/gt"]) == iam.ALLOWED
    assert iam.principal_allowed(policy, "lambda:InvokeFunction", service="sagemaker.amazonaws.com",
                                 arns=["arn:aws:iam::1:role/other"]) == iam.NOT_ALLOWED

"""Test-wide settings: nothing may reach a cloud metadata endpoint, and no test may leave the machine."""

from __future__ import annotations

import os

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
os.environ.setdefault("NO_GCE_CHECK", "True")

"""The configuration rules the spec cannot state, hooked into the generated models.

`ddev validate models --sync` writes the other files of this package from
`assets/configuration/spec.yaml` and leaves this one alone. The rules themselves live in
`cilium_check.config`; this module names them the way the models look them up:
`initialize_instance` before validation, `instance_<option>` per option, `check_instance` after.
"""

from cilium_check.components import ENDPOINT_OPTIONS
from cilium_check.config import (
    check_endpoint,
    check_headers,
    check_hubble_unbounded_labels,
    check_instance,
    check_max_contexts,
    check_positive,
    reject_owned_options,
)

initialize_instance = reject_owned_options

for _option in ENDPOINT_OPTIONS:
    globals()[f"instance_{_option}"] = check_endpoint

instance_max_contexts = check_max_contexts
instance_headers = check_headers
instance_extra_headers = check_headers
instance_hubble_unbounded_labels = check_hubble_unbounded_labels
instance_max_body_size = check_positive
instance_max_line_length = check_positive
instance_timeout = check_positive
instance_connect_timeout = check_positive
instance_read_timeout = check_positive
instance_min_collection_interval = check_positive
shared_timeout = check_positive

__all__ = ["check_instance", "initialize_instance"]

"""AIP-134 update masks: which fields of a resource an Update call changes."""

from __future__ import annotations

from collections.abc import Collection

from google.protobuf import field_mask_pb2, message

from runtime import errors


def mask_paths(
    mask: field_mask_pb2.FieldMask, resource: message.Message, updatable: Collection[str]
) -> list[str]:
    """The fields to change: the mask's paths, `*` for every updatable field, or, with no
    mask, the fields the caller set. Unknown or read-only paths are INVALID_ARGUMENT."""
    if not mask.paths:
        return [field.name for field, _ in resource.ListFields() if field.name in updatable]
    if list(mask.paths) == ["*"]:
        return list(updatable)
    known = set(resource.DESCRIPTOR.fields_by_name)
    problems = [
        errors.FieldViolation(
            "update_mask",
            f"{path!r} is not a field of {resource.DESCRIPTOR.name}"
            if path not in known
            else f"{path!r} cannot be changed",
        )
        for path in mask.paths
        if path not in updatable
    ]
    if problems:
        raise errors.invalid_argument("update_mask names fields that cannot be updated", *problems)
    return list(dict.fromkeys(mask.paths))

"""The connection-spec and flow-spec catalog served by ``GET /connectionSpecs`` and ``GET /flowSpecs``.

Objects follow ``ConnectionSpecItemDTO`` and ``FlowSpecItemDTO`` of Adobe's Sources spec. Every id quoted in
flow-service.md §7 is used verbatim. Adobe has never published the full spec payloads of the email-marketing
destinations (§15), so their ``authSpec``/``targetSpec`` are reconstructed from the tutorials' request
examples (§7.3, §7.4). Specs that the documents do not mention (streaming destinations, a few sources) exist
so that looking a spec up by name is real work; their ids are *invented* (UUIDv5 of the name, see
:func:`_invented_id`) and must not be mistaken for Adobe's.

Conventions the emulator relies on when validating requests (and that a client may rely on too):

* ``authSpec[].spec`` is a JSON Schema; ``required`` lists the mandatory params and params with
  ``"format": "password"`` are secrets, never returned by ``GET``.
* ``targetSpec.spec`` is a JSON Schema; ``properties.mode.enum`` lists the target modes and the per-mode
  requirements are ``allOf`` entries of the form ``{"if": {mode == M}, "then": {"required": [...]}}``.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any, Final

from .jsoncopy import json_copy

JsonObject = dict[str, Any]

JSON_SCHEMA_DRAFT: Final = "http://json-schema.org/draft-07/schema#"
SPEC_VERSION: Final = "1.0"

# --- Connection spec ids documented by Adobe (flow-service.md §7.1) ---------------------------------------
PROFILE_STORE: Final = "8a9c3494-9708-43d7-ae3f-cda01e5030e1"
DATA_LAKE: Final = "23598e46-f560-407b-88d5-ea6207e49db0"
ADOBE_CAMPAIGN: Final = "0b23e41a-cb4a-4321-a78f-3b654f5d7d97"
ORACLE_ELOQUA: Final = "c1e44b6b-e7c8-404b-9031-58f0ef760604"
ORACLE_RESPONSYS: Final = "a5e28ddf-e265-426e-83a1-9d03a3a6822b"
SALESFORCE_MARKETING_CLOUD: Final = "f599a5b3-60a7-4951-950a-cc4115c7ea27"
AMAZON_S3: Final = "4fce964d-3f37-408f-9778-e597338a21ee"
AMAZON_S3_LEGACY: Final = "4890fc95-5a1f-4983-94bb-e060c08e3f81"
SFTP: Final = "36965a81-b1c6-401b-99f8-22508f1e6a26"
SFTP_LEGACY: Final = "64ef4b8b-a6e0-41b5-9677-3805d1ee5dd0"
AZURE_BLOB: Final = "6d6b59bf-fb58-4107-9064-4d246c0e5bb2"
AZURE_BLOB_LEGACY: Final = "e258278b-a4cf-43ac-b158-4fa0ca0d948b"
ADLS_GEN2: Final = "be2c3209-53bc-47e7-ab25-145db8b873e1"
DATA_LANDING_ZONE: Final = "10440537-2a7b-4583-ac39-ed38d4b848e8"
GOOGLE_CLOUD_STORAGE: Final = "c5d93acb-ea8b-4b14-8f53-02138444ae99"

# --- Flow spec ids documented by Adobe (flow-service.md §7.2) ---------------------------------------------
UPS_TO_CAMPAIGN: Final = "71471eba-b620-49e4-90fd-23f1fa0174d8"
UPS_TO_RESPONSYS: Final = "51d675ce-e270-408d-91fc-22717bdf2148"
UPS_TO_SFMC: Final = "493b2bd6-26e4-4167-ab3b-5e910bba44f0"

CLOUD_STORAGE_PROVIDER_ID: Final = "14e34fac-d307-11e9-bb65-2a2ae2dbcce4"  # documented in the activate tutorial
PLATFORM_PROVIDER_ID: Final = "521eee4d-8cbe-4906-bb48-fb6bd4450033"  # invented

_INVENTED_NAMESPACE: Final = uuid.UUID("6f1c1e9e-3b51-4c55-9c3e-2f1d6b3a7e10")


def _invented_id(name: str) -> str:
    """A stable id for a spec Adobe's documents do not give an id for."""
    return str(uuid.uuid5(_INVENTED_NAMESPACE, name))


# --- JSON-schema building blocks ---------------------------------------------------------------------------


def _string(description: str, **extra: Any) -> JsonObject:
    return {"type": "string", "description": description, **extra}


def _secret(description: str, **extra: Any) -> JsonObject:
    # "format": "password" is how Adobe's connection specs flag credentials; the emulator masks these.
    return {"type": "string", "format": "password", "description": description, **extra}


def _auth(name: str, auth_type: str, description: str, properties: JsonObject, required: list[str]) -> JsonObject:
    return {
        "name": name,
        "type": auth_type,
        "spec": {
            "$schema": JSON_SCHEMA_DRAFT,
            "type": "object",
            "description": description,
            "properties": properties,
            "required": required,
        },
    }


def _sftp_password_auth(with_host: bool = True) -> JsonObject:
    props: JsonObject = {"domain": _string("The domain (IP address or host name) of the SFTP server.")}
    if with_host:
        props["host"] = _string("The SFTP server host (legacy name of domain).")
    props |= {
        "port": {"type": "integer", "description": "The SFTP port.", "default": 22, "minimum": 1, "maximum": 65535},
        "username": _string("The SFTP user name."),
        "password": _secret("The SFTP password."),
    }
    return _auth(
        "SFTP with Password",
        "Basic Authentication",
        "Authenticate with a password",
        props,
        ["domain", "username", "password"],
    )


def _sftp_ssh_auth(with_host: bool = True) -> JsonObject:
    props: JsonObject = {"domain": _string("The domain (IP address or host name) of the SFTP server.")}
    if with_host:
        props["host"] = _string("The SFTP server host (legacy name of domain).")
    props |= {
        "port": {"type": "integer", "description": "The SFTP port.", "default": 22, "minimum": 1, "maximum": 65535},
        "username": _string("The SFTP user name."),
        "sshKey": _secret("Base64-encoded private SSH key, without passphrase.", contentEncoding="base64"),
    }
    return _auth(
        "SFTP with SSH Key", "PublicKey", "Authenticate with an SSH key", props, ["domain", "username", "sshKey"]
    )


_CAMPAIGN_S3_AUTH = _auth(
    "S3",
    "KeyBased",
    "Authenticate with an Amazon S3 access key",
    {"accessId": _string("The S3 access key id."), "secretKey": _secret("The S3 secret access key.")},
    ["accessId", "secretKey"],
)
_CAMPAIGN_BLOB_AUTH = _auth(
    "Azure Blob",
    "ConnectionString",
    "Authenticate with an Azure Storage connection string",
    {"connectionString": _secret("The Azure Blob Storage connection string.")},
    ["connectionString"],
)

# Target params each email-marketing mode requires (flow-service.md §7.4).
EMAIL_MODE_REQUIREMENTS: Final[dict[str, list[str]]] = {
    "S3": ["bucketName", "path"],
    "FTP": ["remotePath"],
    "AZURE_BLOB": ["container", "path"],
}


def _when_mode(mode: str, required: list[str]) -> JsonObject:
    return {
        "if": {"properties": {"mode": {"const": mode}}, "required": ["mode"]},
        "then": {"required": required},
    }


def _email_target_spec(modes: list[str]) -> JsonObject:
    return {
        "name": "User Namespace",
        "type": "UserNamespace",
        "spec": {
            "$schema": JSON_SCHEMA_DRAFT,
            "type": "object",
            "description": "Where and how exported audience files are written",
            "properties": {
                "mode": {"type": "string", "enum": modes, "description": "Export location type."},
                "bucketName": _string("The S3 bucket (mode S3)."),
                "path": _string("The folder within the bucket or container (modes S3, AZURE_BLOB)."),
                "remotePath": _string("The folder on the SFTP server (mode FTP)."),
                "container": _string("The Azure Blob container (mode AZURE_BLOB)."),
                "format": {"type": "string", "enum": ["CSV"], "default": "CSV"},
                "includeFileManifest": {"type": "boolean", "default": False},
            },
            # No document requires `format` (it defaults to CSV); the mode and its location are required.
            "required": ["mode"],
            "allOf": [_when_mode(mode, EMAIL_MODE_REQUIREMENTS[mode]) for mode in modes],
        },
    }


def _email_destination(spec_id: str, name: str, auth_specs: list[JsonObject], modes: list[str]) -> JsonObject:
    return {
        "id": spec_id,
        "name": name,
        "providerId": CLOUD_STORAGE_PROVIDER_ID,
        "version": SPEC_VERSION,
        "authSpec": auth_specs,
        "targetSpec": _email_target_spec(modes),
        "attributes": {
            "isDestination": True,
            "category": "emailMarketing",
            "connectorName": name,
            "exportType": "batch",
            "uiAttributes": {"isDestination": True, "category": "emailMarketing", "label": name},
        },
    }


_FILE_TYPE_PROPS: Final[JsonObject] = {
    "compression": {"type": "string", "enum": ["NONE", "GZIP"]},
    "fileType": {"type": "string", "enum": ["CSV", "JSON", "PARQUET"]},
    "datasetFileType": {"type": "string", "enum": ["JSON", "PARQUET"]},
    "csvOptions": {
        "type": "object",
        "properties": {
            "delimiter": {"type": "string", "enum": [",", "\t", "|", ";", ":"], "default": ","},
            "quote": {"type": "string", "enum": ['"', ""], "default": '"'},
            "escape": {"type": "string", "enum": ["\\", "'"], "default": "\\"},
            "nullValue": {"type": "string", "enum": ["null", '""', ""], "default": "null"},
            "emptyValue": {"type": "string", "enum": ["null", '""', ""], "default": ""},
        },
    },
    "includeFileManifest": {"type": "boolean", "default": False},
}


def _file_target_spec(location: JsonObject, required: list[str]) -> JsonObject:
    # New cloud-storage destinations (§7.4): audiences need fileType, dataset exports datasetFileType.
    return {
        "name": "File-based destination target",
        "type": "FileBased",
        "spec": {
            "$schema": JSON_SCHEMA_DRAFT,
            "type": "object",
            "properties": {"mode": {"type": "string", "enum": ["Server-to-server"]}, **location, **_FILE_TYPE_PROPS},
            "required": [*required, "compression"],
            "anyOf": [{"required": ["fileType"]}, {"required": ["datasetFileType"]}],
        },
    }


_PGP_ENCRYPTION: Final[JsonObject] = {
    "name": "File Encryption",
    "type": "FileEncryption",
    "spec": {
        "$schema": JSON_SCHEMA_DRAFT,
        "type": "object",
        "properties": {
            "encryptionAlgo": {"type": "string", "enum": ["PGPGPG"]},
            "publicKey": {"type": "string", "contentEncoding": "base64"},
        },
        "required": ["encryptionAlgo", "publicKey"],
    },
}


def _cloud_destination(
    spec_id: str, name: str, auth_specs: list[JsonObject], target_spec: JsonObject, *, legacy: bool = False
) -> JsonObject:
    spec: JsonObject = {
        "id": spec_id,
        "name": name,
        "providerId": CLOUD_STORAGE_PROVIDER_ID,
        "version": SPEC_VERSION,
        "authSpec": auth_specs,
        "targetSpec": target_spec,
        "attributes": {
            "isDestination": True,
            "category": "cloudStorage",
            "connectorName": name,
            "exportType": "batch",
            "isLegacy": legacy,
            "uiAttributes": {"isDestination": True, "category": "cloudStorage", "label": name},
        },
    }
    if not legacy:
        spec["encryptionSpecs"] = [copy.deepcopy(_PGP_ENCRYPTION)]
    return spec


def _legacy_target_spec(location: JsonObject, mode: str, required: list[str]) -> JsonObject:
    return {
        "name": "Legacy file-based destination target",
        "type": "FileBased",
        "spec": {
            "$schema": JSON_SCHEMA_DRAFT,
            "type": "object",
            "properties": {
                "mode": {"type": "string", "enum": [mode]},
                **location,
                "format": {"type": "string", "enum": ["CSV"], "default": "CSV"},
            },
            "required": ["mode", *required],
        },
    }


def _streaming_destination(
    name: str, category: str, auth_specs: list[JsonObject], target_props: JsonObject, target_required: list[str]
) -> JsonObject:
    return {
        "id": _invented_id(name),
        "name": name,
        "providerId": _invented_id(f"provider:{category}"),
        "version": SPEC_VERSION,
        "authSpec": auth_specs,
        "targetSpec": {
            "name": f"{name} target",
            "type": "Streaming",
            "spec": {
                "$schema": JSON_SCHEMA_DRAFT,
                "type": "object",
                "properties": target_props,
                "required": target_required,
            },
        },
        "attributes": {
            "isDestination": True,
            "category": category,
            "connectorName": name,
            "exportType": "streaming",
            "uiAttributes": {"isDestination": True, "category": category, "label": name},
        },
    }


def _source(
    spec_id: str,
    name: str,
    category: str,
    auth_specs: list[JsonObject],
    type_info: JsonObject | None = None,
    provider_id: str = PLATFORM_PROVIDER_ID,
) -> JsonObject:
    spec: JsonObject = {
        "id": spec_id,
        "name": name,
        "providerId": provider_id,
        "version": SPEC_VERSION,
        "authSpec": auth_specs,
        "sourceSpec": {
            "name": f"{name} source",
            "type": category,
            "attributes": {"uiAttributes": {"isSource": True, "category": category, "label": name}},
        },
        "attributes": {"isSource": True, "category": category, "connectorName": name},
    }
    if type_info is not None:
        spec["attributes"]["typeInfo"] = type_info
    return spec


def _oauth_token_auth(token_name: str = "accessToken") -> JsonObject:
    return _auth(
        "OAuth2 Authorization Code",
        "OAuth2",
        "Authorize through the partner's OAuth consent screen",
        {token_name: _secret("The OAuth access token.")},
        [token_name],
    )


def _bearer_auth(param: str = "token") -> JsonObject:
    return _auth("Bearer token", "Bearer", "Authenticate with a bearer token", {param: _secret("The token.")}, [param])


# Profile-store sources carry this typeInfo on source connections (Dest spec SourceConnectionsResponseUPS).
PROFILE_TYPE_INFO: Final[JsonObject] = {"type": "ProfileFragments", "id": "ups"}


def _build_connection_specs() -> list[JsonObject]:
    s3_access_key = _auth(
        "Access Key",
        "KeyBased",
        "Authenticate with an access key and secret key",
        {
            "s3AccessKey": _string("The S3 access key id.", pattern="^[A-Z2-7]{20}$"),
            "s3SecretKey": _secret("The S3 secret access key.", pattern="^[A-Za-z0-9\\/\\+]{40}$"),
        },
        ["s3AccessKey", "s3SecretKey"],
    )
    s3_role = _auth(
        "Assumed Role",
        "AssumedRole",
        "Authenticate by assuming an IAM role",
        {"s3Role": _string("The ARN of the role to assume.")},
        ["s3Role"],
    )
    blob_connection_string = _auth(
        "ConnectionString",
        "ConnectionString",
        "Azure Storage connection string",
        {"connectionString": _secret("The connection string.")},
        ["connectionString"],
    )
    legacy_sftp_basic = _auth(
        "Basic Authentication for sftp",
        "Basic Authentication",
        "Authenticate with a password",
        {"host": _string("The SFTP server."), "username": _string("User name."), "password": _secret("Password.")},
        ["host", "username", "password"],
    )
    bucket_path = {
        "bucketName": _string("The bucket.", pattern="^[a-z0-9][a-z0-9.\\-]{1,61}[a-z0-9]$"),
        "path": _string("The folder path.", pattern="^[0-9a-zA-Z/!\\-_.*'()]*((%SEGMENT_(NAME|ID)%)?/?)+$"),
    }

    return [
        # Sources.
        _source(PROFILE_STORE, "Profile Store", "profile", [], PROFILE_TYPE_INFO),
        _source(DATA_LAKE, "Data Lake", "datalake", [], {"type": "Datasets", "id": "datalake"}),
        _source(_invented_id("Amazon S3 source"), "Amazon S3 (source)", "cloudStorage", [s3_access_key]),
        _source(
            _invented_id("Salesforce source"),
            "Salesforce (source)",
            "crm",
            [
                _auth(
                    "Basic Authentication",
                    "Basic Authentication",
                    "User name, password and security token",
                    {
                        "username": _string("User name."),
                        "password": _secret("Password."),
                        "securityToken": _secret("Security token."),
                        "environmentUrl": _string("Login URL."),
                    },
                    ["username", "password", "securityToken"],
                )
            ],
        ),
        _source(_invented_id("HTTP API source"), "HTTP API (streaming source)", "streaming", []),
        # Email marketing (§7.1, §7.3, §7.4).
        _email_destination(
            ADOBE_CAMPAIGN,
            "Adobe Campaign",
            [_CAMPAIGN_S3_AUTH, _sftp_password_auth(), _sftp_ssh_auth(), _CAMPAIGN_BLOB_AUTH],
            ["S3", "FTP", "AZURE_BLOB"],
        ),
        _email_destination(ORACLE_ELOQUA, "Oracle Eloqua", [_sftp_password_auth(), _sftp_ssh_auth()], ["FTP"]),
        _email_destination(ORACLE_RESPONSYS, "Oracle Responsys", [_sftp_password_auth(), _sftp_ssh_auth()], ["FTP"]),
        _email_destination(
            SALESFORCE_MARKETING_CLOUD, "Salesforce Marketing Cloud", [_sftp_password_auth(), _sftp_ssh_auth()], ["FTP"]
        ),
        # Current cloud storage.
        _cloud_destination(
            AMAZON_S3, "Amazon S3", [s3_access_key, s3_role], _file_target_spec(bucket_path, ["bucketName", "path"])
        ),
        _cloud_destination(
            SFTP,
            "SFTP",
            [_sftp_password_auth(with_host=False), _sftp_ssh_auth(with_host=False)],
            _file_target_spec({"remotePath": _string("The folder on the server.")}, ["remotePath"]),
        ),
        _cloud_destination(
            AZURE_BLOB,
            "Azure Blob Storage",
            [blob_connection_string],
            _file_target_spec({"container": _string("Container."), "path": _string("Folder.")}, ["container", "path"]),
        ),
        _cloud_destination(
            ADLS_GEN2,
            "Azure Data Lake Storage Gen2",
            [
                _auth(
                    "Azure Service Principal Auth",
                    "ServicePrincipal",
                    "Authenticate with a service principal",
                    {
                        "url": _string("Storage URL."),
                        "servicePrincipalId": _string("Client id."),
                        "servicePrincipalKey": _secret("Client secret."),
                        "tenant": _string("Tenant id."),
                    },
                    ["url", "servicePrincipalId", "servicePrincipalKey", "tenant"],
                )
            ],
            _file_target_spec({"path": _string("Folder.")}, ["path"]),
        ),
        # Data Landing Zone needs no auth (Part 2 §3).
        _cloud_destination(
            DATA_LANDING_ZONE, "Data Landing Zone", [], _file_target_spec({"path": _string("Folder.")}, ["path"])
        ),
        _cloud_destination(
            GOOGLE_CLOUD_STORAGE,
            "Google Cloud Storage",
            [
                _auth(
                    "Google Cloud Storage authentication credentials",
                    "HMAC",
                    "HMAC access key",
                    {"accessKeyId": _string("Access key id."), "secretAccessKey": _secret("Secret.")},
                    ["accessKeyId", "secretAccessKey"],
                )
            ],
            _file_target_spec(bucket_path, ["bucketName", "path"]),
        ),
        # Legacy cloud storage, migrated by 2023-07-26 (§8.3) but still listed.
        _cloud_destination(
            AMAZON_S3_LEGACY,
            "Amazon S3 (legacy)",
            [s3_access_key],
            _legacy_target_spec(bucket_path, "S3", ["bucketName", "path"]),
            legacy=True,
        ),
        _cloud_destination(
            SFTP_LEGACY,
            "SFTP (legacy)",
            [legacy_sftp_basic, _sftp_ssh_auth()],
            _legacy_target_spec({"remotePath": _string("Folder.")}, "FTP", ["remotePath"]),
            legacy=True,
        ),
        _cloud_destination(
            AZURE_BLOB_LEGACY,
            "Azure Blob Storage (legacy)",
            [blob_connection_string],
            _legacy_target_spec(
                {"container": _string("Container."), "path": _string("Folder.")}, "AZURE_BLOB", ["container", "path"]
            ),
            legacy=True,
        ),
        # Streaming and advertising destinations (invented ids).
        _streaming_destination(
            "Amazon Kinesis",
            "cloudStorage",
            [
                _auth(
                    "Amazon Kinesis authentication",
                    "KeyBased",
                    "Access key",
                    {
                        "accessKeyId": _string("Access key id."),
                        "secretKey": _secret("Secret key."),
                        "region": _string("AWS region."),
                    },
                    ["accessKeyId", "secretKey", "region"],
                )
            ],
            {"stream": _string("Stream name."), "region": _string("Region.")},
            ["stream", "region"],
        ),
        _streaming_destination(
            "Azure Event Hubs",
            "cloudStorage",
            [
                _auth(
                    "SAS Key Authentication",
                    "SharedAccessSignature",
                    "Shared access key",
                    {"namespace": _string("Namespace."), "sasKeyName": _string("Key name."), "sasKey": _secret("Key.")},
                    ["namespace", "sasKeyName", "sasKey"],
                )
            ],
            {"eventHubName": _string("Event hub.")},
            ["eventHubName"],
        ),
        _streaming_destination(
            "HTTP API",
            "streaming",
            [_bearer_auth(), _auth("None", "None", "No authentication", {}, [])],
            {"httpEndpoint": _string("Endpoint URL.")},
            ["httpEndpoint"],
        ),
        _streaming_destination(
            "Google Customer Match",
            "advertising",
            [_oauth_token_auth()],
            {"accountId": _string("Google Ads account id.")},
            ["accountId"],
        ),
        _streaming_destination(
            "Facebook Custom Audience",
            "social",
            [_oauth_token_auth()],
            {"accountId": _string("Ad account id.")},
            ["accountId"],
        ),
        _streaming_destination(
            "LinkedIn Matched Audiences",
            "social",
            [_oauth_token_auth()],
            {"accountId": _string("Ad account id.")},
            ["accountId"],
        ),
        _streaming_destination(
            "The Trade Desk",
            "advertising",
            [],
            {"accountId": _string("Partner id."), "region": _string("Server region.")},
            ["accountId", "region"],
        ),
        _streaming_destination(
            "Pinterest Customer List",
            "social",
            [_oauth_token_auth()],
            {"advertiserId": _string("Advertiser id.")},
            ["advertiserId"],
        ),
        _streaming_destination(
            "Marketo Engage",
            "emailMarketing",
            [_oauth_token_auth()],
            {"munchkinId": _string("Munchkin id.")},
            ["munchkinId"],
        ),
        _streaming_destination(
            "Salesforce CRM",
            "crm",
            [
                _auth(
                    "OAuth2 Client Credentials",
                    "OAuth2",
                    "Connected app credentials",
                    {
                        "domain": _string("My domain."),
                        "clientId": _string("Client id."),
                        "clientSecret": _secret("Client secret."),
                    },
                    ["domain", "clientId", "clientSecret"],
                )
            ],
            {"customerDataType": {"type": "string", "enum": ["Contact", "Lead"]}},
            ["customerDataType"],
        ),
        _streaming_destination(
            "Braze",
            "mobileEngagement",
            [_bearer_auth("apiKey")],
            {"endpointInstance": _string("Braze instance.")},
            ["endpointInstance"],
        ),
        _streaming_destination(
            "Microsoft Bing", "advertising", [_oauth_token_auth()], {"accountId": _string("Account id.")}, ["accountId"]
        ),
    ]


def _flow_spec(
    spec_id: str, name: str, sources: list[str], targets: list[str], *, destination: bool, frequency: str = "batch"
) -> JsonObject:
    return {
        "id": spec_id,
        "name": name,
        "providerId": CLOUD_STORAGE_PROVIDER_ID if destination else PLATFORM_PROVIDER_ID,
        "version": SPEC_VERSION,
        "sourceConnectionSpecIds": sources,
        "targetConnectionSpecIds": targets,
        "attributes": {
            "isSourceFlow": not destination,
            "isDestinationFlow": destination,
            "frequency": frequency,
        },
    }


def _build_flow_specs(connection_specs: list[JsonObject]) -> list[JsonObject]:
    streaming_targets = [
        spec["id"] for spec in connection_specs if spec.get("attributes", {}).get("exportType") == "streaming"
    ]
    both_sources = [PROFILE_STORE, DATA_LAKE]
    return [
        # Email marketing and legacy cloud storage (§7.2): the tutorial looks for names beginning "upsTo".
        _flow_spec(
            UPS_TO_CAMPAIGN,
            "upsToCampaign",
            [PROFILE_STORE],
            [ADOBE_CAMPAIGN, ORACLE_ELOQUA, AMAZON_S3_LEGACY, SFTP_LEGACY, AZURE_BLOB_LEGACY],
            destination=True,
        ),
        _flow_spec(UPS_TO_RESPONSYS, "upsToResponsys", [PROFILE_STORE], [ORACLE_RESPONSYS], destination=True),
        _flow_spec(
            UPS_TO_SFMC,
            "upsToSalesforceMarketingCloud",
            [PROFILE_STORE],
            [SALESFORCE_MARKETING_CLOUD],
            destination=True,
        ),
        # New cloud-storage audience exports; ADLS, DLZ and GCS share their flow spec with dataset exports.
        _flow_spec(
            "1a0514a6-33d4-4c7f-aff8-594799c47549", "upsToAmazonS3", [PROFILE_STORE], [AMAZON_S3], destination=True
        ),
        _flow_spec(
            "752d422f-b16f-4f0d-b1c6-26e448e3b388", "upsToAzureBlob", [PROFILE_STORE], [AZURE_BLOB], destination=True
        ),
        _flow_spec("fd36aaa4-bf2b-43fb-9387-43785eeeb799", "upsToSftp", [PROFILE_STORE], [SFTP], destination=True),
        _flow_spec(
            "17be2013-2549-41ce-96e7-a70363bec293", "exportToAdlsGen2", both_sources, [ADLS_GEN2], destination=True
        ),
        _flow_spec(
            "cd2fc47e-e838-4f38-a581-8fff2f99b63a",
            "exportToDataLandingZone",
            both_sources,
            [DATA_LANDING_ZONE],
            destination=True,
        ),
        _flow_spec(
            "585c15c4-6cbf-4126-8f87-e26bff78b657",
            "exportToGoogleCloudStorage",
            both_sources,
            [GOOGLE_CLOUD_STORAGE],
            destination=True,
        ),
        # Dataset exports.
        _flow_spec(
            "269ba276-16fc-47db-92b0-c1049a3c131f",
            "datasetExportToAmazonS3",
            [DATA_LAKE],
            [AMAZON_S3],
            destination=True,
        ),
        _flow_spec(
            "95bd8965-fc8a-4119-b9c3-944c2c2df6d2",
            "datasetExportToAzureBlob",
            [DATA_LAKE],
            [AZURE_BLOB],
            destination=True,
        ),
        _flow_spec(
            "354d6aad-4754-46e4-a576-1b384561c440", "datasetExportToSftp", [DATA_LAKE], [SFTP], destination=True
        ),
        # Invented: streaming audience activation and one ingestion flow.
        _flow_spec(
            _invented_id("upsToStreamingDestination"),
            "upsToStreamingDestination",
            [PROFILE_STORE],
            streaming_targets,
            destination=True,
            frequency="streaming",
        ),
        _flow_spec(
            _invented_id("CloudStorageToAEP"),
            "CloudStorageToAEP",
            [_invented_id("Amazon S3 source")],
            [DATA_LAKE],
            destination=False,
        ),
    ]


class Catalog:
    """Read-only lookup over the specs. Public accessors return deep copies so nothing can mutate the catalog;
    the ``*_readonly`` ones return the catalog's own objects, for request validation, which only reads them
    (a copy of a large spec per lookup was a good part of each request's CPU)."""

    def __init__(self) -> None:
        self._connection_specs = _build_connection_specs()
        self._flow_specs = _build_flow_specs(self._connection_specs)
        self._connection_by_id = {spec["id"]: spec for spec in self._connection_specs}
        self._flow_by_id = {spec["id"]: spec for spec in self._flow_specs}
        self._secret_params = {
            (spec["id"], auth["name"]): frozenset(
                name
                for name, schema in auth.get("spec", {}).get("properties", {}).items()
                if schema.get("format") == "password"
            )
            for spec in self._connection_by_id.values()
            for auth in reversed(spec.get("authSpec", []))  # reversed: the first auth spec of a name wins
        }
        self._all_secret_params = frozenset[str]().union(*self._secret_params.values())

    def connection_specs(self) -> list[JsonObject]:
        return json_copy(self._connection_specs)

    def flow_specs(self) -> list[JsonObject]:
        return json_copy(self._flow_specs)

    def connection_spec(self, spec_id: str) -> JsonObject | None:
        spec = self.connection_spec_readonly(spec_id)
        return json_copy(spec) if spec is not None else None

    def flow_spec(self, spec_id: str) -> JsonObject | None:
        spec = self.flow_spec_readonly(spec_id)
        return json_copy(spec) if spec is not None else None

    def auth_spec(self, connection_spec_id: str, spec_name: str) -> JsonObject | None:
        auth = self.auth_spec_readonly(connection_spec_id, spec_name)
        return json_copy(auth) if auth is not None else None

    def connection_spec_readonly(self, spec_id: str) -> JsonObject | None:
        """The catalog's own connection spec: never mutate it, never hand it out."""
        return self._connection_by_id.get(spec_id)

    def flow_spec_readonly(self, spec_id: str) -> JsonObject | None:
        """The catalog's own flow spec: never mutate it, never hand it out."""
        return self._flow_by_id.get(spec_id)

    def auth_spec_readonly(self, connection_spec_id: str, spec_name: str) -> JsonObject | None:
        """The catalog's own auth spec: never mutate it, never hand it out."""
        spec = self._connection_by_id.get(connection_spec_id)
        for auth in (spec or {}).get("authSpec", []):
            if auth["name"] == spec_name:
                return auth  # type: ignore[no-any-return]
        return None

    def secret_params(self, connection_spec_id: str, spec_name: str) -> frozenset[str]:
        """Names of the auth params flagged ``"format": "password"`` for this spec and auth spec name."""
        return self._secret_params.get((connection_spec_id, spec_name), frozenset())

    def all_secret_params(self) -> frozenset[str]:
        """Every auth param name that some auth spec of the catalog flags ``"format": "password"``."""
        return self._all_secret_params

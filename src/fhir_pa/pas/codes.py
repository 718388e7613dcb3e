"""Canonical URLs and code systems the PAS client writes and reads (PAS 2.2.1).

Kept in one place so a payer quirk (another system URL) is a one-line change, and so the checks and the
builder can never disagree on a URL.
"""

from __future__ import annotations

PAS = "http://hl7.org/fhir/us/davinci-pas"
SD = f"{PAS}/StructureDefinition"


def profile(name: str) -> str:
    """Canonical URL of a PAS profile, e.g. ``profile("claim")``."""
    return f"{SD}/profile-{name}"


def extension(name: str) -> str:
    """Canonical URL of a PAS extension, e.g. ``extension("certificationType")``."""
    return f"{SD}/extension-{name}"


# Profiles
REQUEST_BUNDLE = profile("pas-request-bundle")
RESPONSE_BUNDLE = profile("pas-response-bundle")
CLAIM = profile("claim")
CLAIM_UPDATE = profile("claim-update")
CLAIM_RESPONSE = profile("claimresponse")
BENEFICIARY = profile("beneficiary")
SUBSCRIBER = profile("subscriber")
COVERAGE = profile("coverage")
INSURER = profile("insurer")
REQUESTOR = profile("requestor")
PRACTITIONER = profile("practitioner")
PRACTITIONER_ROLE = profile("practitionerrole")
SERVICE_REQUEST = profile("servicerequest")
DOCUMENT_REFERENCE = profile("documentreference")

# Extensions
EXT_LEVEL_OF_SERVICE = extension("levelOfServiceCode")
EXT_TRANSMISSION_IDS = extension("TransmissionIdentifiers")
EXT_REQUEST_TYPE = extension("serviceItemRequestType")
EXT_CERTIFICATION_TYPE = extension("certificationType")
EXT_REQUESTED_SERVICE = extension("requestedService")
EXT_ITEM_TRACE_NUMBER = extension("itemTraceNumber")
EXT_CARE_TEAM_SCOPE = extension("careTeamClaimScope")
EXT_DOCUMENT_INFORMATION = extension("documentInformation")
EXT_REVIEW_ACTION = extension("reviewAction")
EXT_REVIEW_ACTION_CODE = extension("reviewActionCode")
EXT_CLAIM_ENCOUNTER = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Claim.encounter"

# Code systems
PAS_TEMP_CODES = f"{PAS}/CodeSystem/PASTempCodes"
X12 = "https://codesystem.x12.org/005010"
X12_LEVEL_OF_SERVICE = f"{X12}/1338"
X12_REQUEST_TYPE = f"{X12}/1525"
X12_CERTIFICATION_TYPE = f"{X12}/1322"
X12_SERVICE_TYPE = f"{X12}/1365"
X12_ENTITY_TYPE = f"{X12}/98"
X12_RELATIONSHIP = f"{X12}/1069"
X12_REPORT_TYPE = f"{X12}/755"
X12_TRANSMISSION = f"{X12}/756"
X12_UNITS = f"{X12}/673"
X12_REVIEW_ACTION = f"{X12}/306"
CPT = "http://www.ama-assn.org/go/cpt"
HCPCS = "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
POS = "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set"
NPI = "http://hl7.org/fhir/sid/us-npi"
TIN = "http://terminology.hl7.org/NamingSystem/USEIN"
LOINC = "http://loinc.org"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
C4BB_IDENTIFIER_TYPE = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBIdentifierType"
CLAIM_TYPE = "http://terminology.hl7.org/CodeSystem/claim-type"
PROCESS_PRIORITY = "http://terminology.hl7.org/CodeSystem/processpriority"
SUBSCRIBER_RELATIONSHIP = "http://terminology.hl7.org/CodeSystem/subscriber-relationship"
DIAGNOSIS_TYPE = PAS_TEMP_CODES
USCORE_DOC_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category"

#: X12 1069 individual relationship codes for the FHIR subscriber-relationship codes we accept.
X12_RELATIONSHIP_CODES = {"self": "18", "spouse": "01", "child": "19", "other": "G8"}

#pragma once

// A User and a Group as the SCIM server stores them (with id and meta),
// shaped like what Entra ID and Okta provision: the fuzz targets evaluate
// filters and apply PATCH operations against them.

#include <nlohmann/json.hpp>

namespace orgsync::fuzz {

inline const nlohmann::json& sample_user() {
    static const nlohmann::json user = nlohmann::json::parse(R"({
      "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
      "id": "2819c223-7f76-453a-919d-413861904646",
      "externalId": "b1c2d3",
      "userName": "Barbara.Jensen@acme.com",
      "name": {"formatted": "Ms. Barbara J Jensen", "familyName": "Jensen", "givenName": "Barbara"},
      "displayName": "Babs Jensen",
      "title": "Tour Guide",
      "active": true,
      "emails": [{"value": "bjensen@acme.com", "type": "work", "primary": true},
                 {"value": "babs@jensen.org", "type": "home"}],
      "phoneNumbers": [{"value": "555-555-8377", "type": "work"}],
      "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
        "employeeNumber": "701984", "department": "Tour Operations",
        "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}},
      "meta": {"resourceType": "User", "created": "2026-01-23T04:56:22Z",
               "lastModified": "2026-05-13T04:42:34Z", "version": "W/\"a330bc54f0671c9\""}
    })");
    return user;
}

inline const nlohmann::json& sample_group() {
    static const nlohmann::json group = nlohmann::json::parse(R"({
      "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
      "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
      "externalId": "00g1emaKYZTWRYYRRTSK",
      "displayName": "Acme Researchers",
      "members": [{"value": "2819c223-7f76-453a-919d-413861904646", "display": "Babs Jensen"},
                  {"value": "902c246b-6245-4190-8e05-00816be7344a"}],
      "meta": {"resourceType": "Group", "created": "2026-01-23T04:56:22Z",
               "lastModified": "2026-05-13T04:42:34Z", "version": "W/\"3694e05e9dff592\""}
    })");
    return group;
}

}  // namespace orgsync::fuzz

// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import "./MemberGated.sol";

/// @title Data-use authorizations between members, and the log of every access and refusal.
/// @notice An owner grants a grantee the use of one dataset for one purpose within a time window.
///         The owner's node checks `isAuthorized` before serving, then logs each use with
///         `recordAccess` and each refusal with `recordDenial` (or their batch forms).
contract DataUseAuthorization is MemberGated {
    enum Purpose { NONE, UNDERWRITING, CLAIMS, FRAUD, STATISTICS, PRICING }

    /// @notice Why `grantStatus` says a grant does not authorize use right now.
    enum GrantState { VALID, UNKNOWN, REVOKED, NOT_YET_VALID, EXPIRED, OWNER_NOT_IN_GOOD_STANDING, GRANTEE_NOT_IN_GOOD_STANDING }

    struct Grant {
        address owner;
        address grantee;
        bytes32 datasetId;
        Purpose purpose;
        bytes32 scopeHash;
        uint64 notBefore;
        uint64 expiresAt;
        bytes32 consentRef;
        uint64 createdAt;
        uint64 revokedAt;
    }

    error InvalidPurpose();
    error InvalidWindow(uint64 notBefore, uint64 expiresAt);
    error GranteeNotMember(address grantee);
    error SelfGrant();
    error UnknownGrant(uint256 grantId);
    error NotGrantOwner(uint256 grantId, address caller);
    error AlreadyRevoked(uint256 grantId);
    error LengthMismatch();
    error EmptyBatch();

    event AuthorizationGranted(
        uint256 indexed grantId, address indexed owner, address indexed grantee,
        bytes32 datasetId, Purpose purpose, bytes32 scopeHash, uint64 notBefore, uint64 expiresAt, bytes32 consentRef
    );
    event AuthorizationRevoked(uint256 indexed grantId, address indexed owner, address indexed grantee);
    event AccessRecorded(
        address indexed requester, address indexed owner, Purpose indexed purpose,
        uint256 grantId, bytes32 datasetId, bytes32 queryHash, uint32 rows
    );
    event DenialRecorded(
        address indexed requester, address indexed owner, Purpose indexed purpose,
        bytes32 datasetId, uint16 reasonCode, bytes32 queryHash
    );

    Grant[] private _grants;
    // keccak256(owner, grantee, datasetId, purpose) => grant ids, so isAuthorized needs no scan of all grants.
    mapping(bytes32 => uint256[]) private _grantsByKey;
    mapping(address => uint256[]) private _grantsByOwner;
    mapping(address => uint256[]) private _grantsByGrantee;

    constructor(IConsortiumRegistry registry_) MemberGated(registry_) {}

    // ---------------------------------------------------------------- grants

    /// @notice Grant `grantee` the use of `datasetId` for `purpose` from `notBefore` until `expiresAt`.
    /// @param scopeHash hash of the scope document (columns, filters, row limits)
    /// @param notBefore first second of validity (0 for now)
    /// @param expiresAt first second at which the grant is no longer valid
    /// @param consentRef hash of the data subjects' consent record
    /// @return grantId the new grant's id (ids start at 1)
    function grant(
        address grantee,
        bytes32 datasetId,
        Purpose purpose,
        bytes32 scopeHash,
        uint64 notBefore,
        uint64 expiresAt,
        bytes32 consentRef
    ) external onlyGoodStanding returns (uint256 grantId) {
        if (purpose == Purpose.NONE) revert InvalidPurpose();
        if (grantee == msg.sender) revert SelfGrant();
        if (!registry.isMember(grantee)) revert GranteeNotMember(grantee);
        if (notBefore == 0) notBefore = uint64(block.timestamp);
        if (expiresAt <= notBefore || expiresAt <= block.timestamp) revert InvalidWindow(notBefore, expiresAt);
        _grants.push(Grant(msg.sender, grantee, datasetId, purpose, scopeHash, notBefore, expiresAt, consentRef, uint64(block.timestamp), 0));
        grantId = _grants.length;
        _grantsByKey[_key(msg.sender, grantee, datasetId, purpose)].push(grantId);
        _grantsByOwner[msg.sender].push(grantId);
        _grantsByGrantee[grantee].push(grantId);
        emit AuthorizationGranted(grantId, msg.sender, grantee, datasetId, purpose, scopeHash, notBefore, expiresAt, consentRef);
    }

    /// @notice Revoke a grant; effective from the block that includes this transaction.
    function revoke(uint256 grantId) external onlyGoodStanding {
        Grant storage g = _grant(grantId);
        if (g.owner != msg.sender) revert NotGrantOwner(grantId, msg.sender);
        if (g.revokedAt != 0) revert AlreadyRevoked(grantId);
        g.revokedAt = uint64(block.timestamp);
        emit AuthorizationRevoked(grantId, g.owner, g.grantee);
    }

    // ---------------------------------------------------------------- views

    /// @notice Whether `grantee` may use `owner`'s `datasetId` for `purpose` right now.
    function isAuthorized(address owner, address grantee, bytes32 datasetId, Purpose purpose) external view returns (bool) {
        return activeGrantId(owner, grantee, datasetId, purpose) != 0;
    }

    /// @notice The id of a grant that authorizes this use right now, or 0 when there is none.
    function activeGrantId(address owner, address grantee, bytes32 datasetId, Purpose purpose) public view returns (uint256) {
        uint256[] storage ids = _grantsByKey[_key(owner, grantee, datasetId, purpose)];
        for (uint256 i = ids.length; i > 0; i--) {
            if (grantStatus(ids[i - 1]) == GrantState.VALID) return ids[i - 1];
        }
        return 0;
    }

    /// @notice Whether a grant authorizes use right now, and if not, why not.
    function grantStatus(uint256 grantId) public view returns (GrantState) {
        if (grantId == 0 || grantId > _grants.length) return GrantState.UNKNOWN;
        Grant storage g = _grants[grantId - 1];
        if (g.revokedAt != 0) return GrantState.REVOKED;
        if (block.timestamp < g.notBefore) return GrantState.NOT_YET_VALID;
        if (block.timestamp >= g.expiresAt) return GrantState.EXPIRED;
        if (!registry.isInGoodStanding(g.owner)) return GrantState.OWNER_NOT_IN_GOOD_STANDING;
        if (!registry.isInGoodStanding(g.grantee)) return GrantState.GRANTEE_NOT_IN_GOOD_STANDING;
        return GrantState.VALID;
    }

    /// @notice A grant by id.
    function getGrant(uint256 grantId) external view returns (Grant memory) {
        return _grant(grantId);
    }

    /// @notice Number of grants ever made.
    function grantCount() external view returns (uint256) {
        return _grants.length;
    }

    /// @notice Ids of the grants `owner` has given.
    function grantsGivenBy(address owner) external view returns (uint256[] memory) {
        return _grantsByOwner[owner];
    }

    /// @notice Ids of the grants `grantee` has received.
    function grantsReceivedBy(address grantee) external view returns (uint256[] memory) {
        return _grantsByGrantee[grantee];
    }

    // ---------------------------------------------------------------- access log

    /// @notice Log one use of data served under `grantId`; only the grant's owner (the data holder) logs.
    /// @dev Not refused when the grant has lapsed since the node served the request: the log must never
    ///      lose a use. Uses outside a grant's window are flagged by the regulator's anomaly checks.
    function recordAccess(uint256 grantId, bytes32 queryHash, uint32 rows) external onlyGoodStanding {
        _recordAccess(grantId, queryHash, rows);
    }

    /// @notice Log many uses in one transaction (one event each).
    function recordAccessBatch(uint256[] calldata grantIds, bytes32[] calldata queryHashes, uint32[] calldata rows)
        external
        onlyGoodStanding
    {
        uint256 n = grantIds.length;
        if (n == 0) revert EmptyBatch();
        if (queryHashes.length != n || rows.length != n) revert LengthMismatch();
        for (uint256 i = 0; i < n; i++) {
            _recordAccess(grantIds[i], queryHashes[i], rows[i]);
        }
    }

    /// @notice Log one refused request for the caller's `datasetId`.
    /// @param reasonCode the node's refusal reason (see node/chain/reasons.py)
    function recordDenial(address requester, bytes32 datasetId, Purpose purpose, uint16 reasonCode, bytes32 queryHash)
        external
        onlyGoodStanding
    {
        emit DenialRecorded(requester, msg.sender, purpose, datasetId, reasonCode, queryHash);
    }

    /// @notice Log many refusals in one transaction (one event each).
    function recordDenialBatch(
        address[] calldata requesters,
        bytes32[] calldata datasetIds,
        Purpose[] calldata purposes,
        uint16[] calldata reasonCodes,
        bytes32[] calldata queryHashes
    ) external onlyGoodStanding {
        uint256 n = requesters.length;
        if (n == 0) revert EmptyBatch();
        if (datasetIds.length != n || purposes.length != n || reasonCodes.length != n || queryHashes.length != n) {
            revert LengthMismatch();
        }
        for (uint256 i = 0; i < n; i++) {
            emit DenialRecorded(requesters[i], msg.sender, purposes[i], datasetIds[i], reasonCodes[i], queryHashes[i]);
        }
    }

    // ---------------------------------------------------------------- internals

    function _recordAccess(uint256 grantId, bytes32 queryHash, uint32 rows) internal {
        Grant storage g = _grant(grantId);
        if (g.owner != msg.sender) revert NotGrantOwner(grantId, msg.sender);
        emit AccessRecorded(g.grantee, g.owner, g.purpose, grantId, g.datasetId, queryHash, rows);
    }

    function _grant(uint256 grantId) internal view returns (Grant storage) {
        if (grantId == 0 || grantId > _grants.length) revert UnknownGrant(grantId);
        return _grants[grantId - 1];
    }

    function _key(address owner, address grantee, bytes32 datasetId, Purpose purpose) internal pure returns (bytes32) {
        return keccak256(abi.encode(owner, grantee, datasetId, purpose));
    }
}

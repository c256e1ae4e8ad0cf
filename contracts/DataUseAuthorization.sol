// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import "./MemberGated.sol";

/// @title Data-use authorizations between members, and the log of every access and refusal.
/// @notice An owner grants a grantee the use of one dataset for one purpose within a time window,
///         and only with a signed consent to exactly that use (EIP-712 `DataUseConsent`, checked here,
///         usable for one grant). The owner's node checks `isAuthorized` before serving, then logs each
///         use with `recordAccess` and each refusal with `recordDenial` (or their batch forms).
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

    /// @notice What a consent consents to, signed by `signer` as EIP-712 typed data
    ///         (domain "ConsortiumConsent", version "2", this chain's id, this contract).
    /// @dev `subjectsRoot` is 0 for one data subject's own consent (the subject signs); otherwise it is the
    ///      RFC 6962 root of a batch of subjects' consent records, attested by the member that collected
    ///      them (the signer must then be a member in good standing, so the attestation is accountable).
    struct Consent {
        address signer;
        address owner;
        address grantee;
        bytes32 datasetId;
        Purpose purpose;
        bytes32 scopeHash;
        uint64 expiresAt;
        bytes32 subjectsRoot;
        bytes32 nonce;
    }

    /// @notice Which field of a consent differs from the grant it is offered for.
    enum ConsentField { OWNER, GRANTEE, DATASET, PURPOSE, SCOPE, EXPIRY }

    error InvalidPurpose();
    error InvalidWindow(uint64 notBefore, uint64 expiresAt);
    error GranteeNotMember(address grantee);
    error SelfGrant();
    error UnknownGrant(uint256 grantId);
    error NotGrantOwner(uint256 grantId, address caller);
    error AlreadyRevoked(uint256 grantId);
    error LengthMismatch();
    error EmptyBatch();
    error ConsentMismatch(ConsentField field);
    error ConsentExpired(uint64 expiresAt);
    error ConsentAlreadyUsed(bytes32 digest, uint256 grantId);
    error BadConsentSignature(address signer);
    error ConsentSignerNotMember(address signer);
    error NotMarket(address caller);
    error MarketAlreadyBound(address market);
    error NotDeployer(address caller);

    event AuthorizationGranted(
        uint256 indexed grantId, address indexed owner, address indexed grantee,
        bytes32 datasetId, Purpose purpose, bytes32 scopeHash, uint64 notBefore, uint64 expiresAt, bytes32 consentRef
    );
    /// @notice The consent a grant rests on: `consentDigest` is also the grant's `consentRef`.
    event ConsentAccepted(uint256 indexed grantId, bytes32 indexed consentDigest, address indexed signer, bytes32 subjectsRoot);
    event AuthorizationRevoked(uint256 indexed grantId, address indexed owner, address indexed grantee);
    event AccessRecorded(
        address indexed requester, address indexed owner, Purpose indexed purpose,
        uint256 grantId, bytes32 datasetId, bytes32 queryHash, uint32 rows
    );
    /// @notice The data market whose certificates create grants was bound (once, by the deployer).
    event MarketBound(address indexed market);
    event DenialRecorded(
        address indexed requester, address indexed owner, Purpose indexed purpose,
        bytes32 datasetId, uint16 reasonCode, bytes32 queryHash
    );

    Grant[] private _grants;
    // keccak256(owner, grantee, datasetId, purpose) => grant ids, so isAuthorized needs no scan of all grants.
    mapping(bytes32 => uint256[]) private _grantsByKey;
    mapping(address => uint256[]) private _grantsByOwner;
    mapping(address => uint256[]) private _grantsByGrantee;

    // EIP-712 type hashes (EIP-712 §hashStruct; the domain binds chain id and this contract).
    bytes32 private constant _DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 private constant _CONSENT_TYPEHASH = keccak256(
        "DataUseConsent(address signer,address owner,address grantee,bytes32 datasetId,uint8 purpose,"
        "bytes32 scopeHash,uint64 expiresAt,bytes32 subjectsRoot,bytes32 nonce)"
    );
    // secp256k1n / 2: a signature with a larger s is the malleated twin of a valid one (EIP-2).
    uint256 private constant _HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    /// @notice The grant each consent digest was used for (0 = unused): a consent authorizes one grant.
    mapping(bytes32 => uint256) public consentUsedBy;

    /// @notice The data market (DataMarket) whose certificate purchases create grants; 0 until bound.
    address public market;
    // Only the deployer may bind the market, once, right after deploying both: no later admin exists.
    address private immutable _deployer;
    /// @notice Whether a grant was created by the market (only those may be revoked by it).
    mapping(uint256 => bool) public createdByMarket;

    constructor(IConsortiumRegistry registry_) MemberGated(registry_) {
        _deployer = msg.sender;
    }

    /// @notice Bind the data market whose certificates create grants; callable once, by the deployer.
    function bindMarket(address market_) external {
        if (msg.sender != _deployer) revert NotDeployer(msg.sender);
        if (market != address(0)) revert MarketAlreadyBound(market);
        if (market_ == address(0)) revert NotMarket(market_);
        market = market_;
        emit MarketBound(market_);
    }

    // ---------------------------------------------------------------- grants

    /// @notice Grant `grantee` the use of `datasetId` for `purpose` from `notBefore` until `expiresAt`,
    ///         with a consent to exactly this use.
    /// @param scopeHash hash of the scope document (columns, filters, row limits)
    /// @param notBefore first second of validity (0 for now)
    /// @param expiresAt first second at which the grant is no longer valid; not after the consent's expiry
    /// @param consent the consent: owner (the caller), grantee, dataset, purpose and scope equal the grant's,
    ///        unexpired, never used for another grant
    /// @param signature the consent signer's 65-byte (r, s, v) signature of the consent's EIP-712 digest
    /// @return grantId the new grant's id (ids start at 1); its consentRef is the consent's digest
    function grant(
        address grantee,
        bytes32 datasetId,
        Purpose purpose,
        bytes32 scopeHash,
        uint64 notBefore,
        uint64 expiresAt,
        Consent calldata consent,
        bytes calldata signature
    ) external onlyGoodStanding returns (uint256 grantId) {
        if (purpose == Purpose.NONE) revert InvalidPurpose();
        if (grantee == msg.sender) revert SelfGrant();
        if (!registry.isMember(grantee)) revert GranteeNotMember(grantee);
        if (notBefore == 0) notBefore = uint64(block.timestamp);
        if (expiresAt <= notBefore || expiresAt <= block.timestamp) revert InvalidWindow(notBefore, expiresAt);
        _checkConsentFields(consent, grantee, datasetId, purpose, scopeHash, expiresAt);
        bytes32 consentRef = consentDigest(consent);
        _checkConsentSignature(consent, consentRef, signature);
        _grants.push(Grant(msg.sender, grantee, datasetId, purpose, scopeHash, notBefore, expiresAt, consentRef, uint64(block.timestamp), 0));
        grantId = _grants.length;
        consentUsedBy[consentRef] = grantId;
        _grantsByKey[_key(msg.sender, grantee, datasetId, purpose)].push(grantId);
        _grantsByOwner[msg.sender].push(grantId);
        _grantsByGrantee[grantee].push(grantId);
        emit ConsentAccepted(grantId, consentRef, consent.signer, consent.subjectsRoot);
        emit AuthorizationGranted(grantId, msg.sender, grantee, datasetId, purpose, scopeHash, notBefore, expiresAt, consentRef);
    }

    /// @notice Grant created by a certificate purchase on the bound market: `owner` published the offer
    ///         (a transaction it signed, carrying `consentRef`, its attestation of the consent to sell this
    ///         use to members), `grantee` bought it. Same rules as `grant`, enforced the same way by the owner's node.
    /// @dev An offer's consent covers every certificate sold under it, so `consentUsedBy` is not set here;
    ///      the ConsentAccepted event names the owner as the attesting signer.
    function grantFromMarket(
        address owner,
        address grantee,
        bytes32 datasetId,
        Purpose purpose,
        bytes32 scopeHash,
        uint64 expiresAt,
        bytes32 consentRef
    ) external returns (uint256 grantId) {
        if (msg.sender != market || market == address(0)) revert NotMarket(msg.sender);
        _requireGoodStanding(owner);
        if (purpose == Purpose.NONE) revert InvalidPurpose();
        if (grantee == owner) revert SelfGrant();
        if (!registry.isInGoodStanding(grantee)) revert GranteeNotMember(grantee);
        uint64 notBefore = uint64(block.timestamp);
        if (expiresAt <= notBefore) revert InvalidWindow(notBefore, expiresAt);
        _grants.push(Grant(owner, grantee, datasetId, purpose, scopeHash, notBefore, expiresAt, consentRef, notBefore, 0));
        grantId = _grants.length;
        createdByMarket[grantId] = true;
        _grantsByKey[_key(owner, grantee, datasetId, purpose)].push(grantId);
        _grantsByOwner[owner].push(grantId);
        _grantsByGrantee[grantee].push(grantId);
        emit ConsentAccepted(grantId, consentRef, owner, bytes32(0));
        emit AuthorizationGranted(grantId, owner, grantee, datasetId, purpose, scopeHash, notBefore, expiresAt, consentRef);
    }

    /// @notice Revoke a grant the market created, when its certificate is revoked.
    function revokeFromMarket(uint256 grantId) external {
        if (msg.sender != market || market == address(0)) revert NotMarket(msg.sender);
        Grant storage g = _grant(grantId);
        if (!createdByMarket[grantId]) revert NotMarket(msg.sender);
        if (g.revokedAt != 0) revert AlreadyRevoked(grantId);
        g.revokedAt = uint64(block.timestamp);
        emit AuthorizationRevoked(grantId, g.owner, g.grantee);
    }

    /// @notice The EIP-712 digest a consent's signer signs (and the consentRef of the grant it authorizes).
    function consentDigest(Consent calldata c) public view returns (bytes32) {
        bytes32 domain = keccak256(abi.encode(
            _DOMAIN_TYPEHASH, keccak256("ConsortiumConsent"), keccak256("2"), block.chainid, address(this)));
        bytes32 structHash = keccak256(abi.encode(
            _CONSENT_TYPEHASH, c.signer, c.owner, c.grantee, c.datasetId, c.purpose, c.scopeHash, c.expiresAt,
            c.subjectsRoot, c.nonce));
        return keccak256(abi.encodePacked("\x19\x01", domain, structHash));
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

    function _checkConsentFields(
        Consent calldata c, address grantee, bytes32 datasetId, Purpose purpose, bytes32 scopeHash, uint64 expiresAt
    ) internal view {
        if (c.owner != msg.sender) revert ConsentMismatch(ConsentField.OWNER);
        if (c.grantee != grantee) revert ConsentMismatch(ConsentField.GRANTEE);
        if (c.datasetId != datasetId) revert ConsentMismatch(ConsentField.DATASET);
        if (c.purpose != purpose) revert ConsentMismatch(ConsentField.PURPOSE);
        if (c.scopeHash != scopeHash) revert ConsentMismatch(ConsentField.SCOPE);
        if (c.expiresAt <= block.timestamp) revert ConsentExpired(c.expiresAt);
        if (expiresAt > c.expiresAt) revert ConsentMismatch(ConsentField.EXPIRY);  // a grant never outlives its consent
    }

    function _checkConsentSignature(Consent calldata c, bytes32 digest, bytes calldata signature) internal view {
        uint256 used = consentUsedBy[digest];
        if (used != 0) revert ConsentAlreadyUsed(digest, used);
        if (signature.length != 65 || c.signer == address(0)) revert BadConsentSignature(c.signer);
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (v < 27) v += 27;
        if (uint256(s) > _HALF_N || (v != 27 && v != 28) || ecrecover(digest, v, r, s) != c.signer) {
            revert BadConsentSignature(c.signer);
        }
        // A batch speaks for many subjects: only an accountable member may attest one.
        if (c.subjectsRoot != bytes32(0) && !registry.isInGoodStanding(c.signer)) revert ConsentSignerNotMember(c.signer);
    }

    function _grant(uint256 grantId) internal view returns (Grant storage) {
        if (grantId == 0 || grantId > _grants.length) revert UnknownGrant(grantId);
        return _grants[grantId - 1];
    }

    function _key(address owner, address grantee, bytes32 datasetId, Purpose purpose) internal pure returns (bytes32) {
        return keccak256(abi.encode(owner, grantee, datasetId, purpose));
    }
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import "./MemberGated.sol";

/// @title Write-once anchors of claim-evidence Merkle roots, and the claim lifecycle.
/// @notice Members anchor the RFC 6962 root of each evidence batch; an auditor later checks a
///         document's inclusion proof against the root read from here. Documents never touch the chain.
///         Anchors and claims live in each member's own namespace (the member's address is part of the
///         key), so no member can take a root, a batch id or a claim id away from another: a root or a
///         batch id is write-once per submitter, a claim is (insurer, claim id hash).
contract EvidenceRegistry is MemberGated {
    enum ClaimStep { NONE, REPORTED, MATERIALS_COMPLETE, ASSESSED, APPROVED, REJECTED, PAID }

    struct Batch {
        bytes32 root;
        bytes32 batchId;
        uint64 size;
        address submitter;
        uint64 blockNumber;
        uint64 timestamp;
        bytes32 metadataHash;
    }

    struct Claim {
        address insurer;
        ClaimStep step;
        uint64 updatedAt;
    }

    /// @notice Flag bit recorded with an assessment: express claim (small amount, materials complete, liability clear).
    uint8 public constant FLAG_EXPRESS = 1;

    error EmptyRoot();
    error EmptyBatchId();
    error EmptyBatch();
    error RootAlreadyAnchored(address submitter, bytes32 root);
    error BatchIdAlreadyUsed(address submitter, bytes32 batchId);
    error UnknownRoot(address submitter, bytes32 root);
    error UnknownBatch(address submitter, bytes32 batchId);
    error InvalidClaimStep(bytes32 claimKey, ClaimStep from, ClaimStep to);

    event BatchAnchored(bytes32 indexed root, bytes32 indexed batchId, address indexed submitter, uint64 size, bytes32 metadataHash);
    event ClaimStepRecorded(bytes32 indexed claimKey, bytes32 indexed claimIdHash, address indexed actor, ClaimStep step,
                            bytes32 detailHash, uint8 flags);

    /// @dev keccak(submitter, batchId) => batch
    mapping(bytes32 => Batch) private _batches;
    /// @dev keccak(submitter, root) => batchId
    mapping(bytes32 => bytes32) private _batchIdByRoot;
    /// @dev claimKey(insurer, claimIdHash) => claim
    mapping(bytes32 => Claim) private _claims;
    uint256 public batchCount;

    constructor(IConsortiumRegistry registry_) MemberGated(registry_) {}

    /// @notice Anchor the root of an evidence batch of `size` leaves; each root and each batch id once
    ///         per submitter.
    /// @param metadataHash hash of the batch's metadata (time window, document types), not the documents
    function anchorBatch(bytes32 root, uint64 size, bytes32 batchId, bytes32 metadataHash) external onlyGoodStanding {
        if (root == bytes32(0)) revert EmptyRoot();
        if (batchId == bytes32(0)) revert EmptyBatchId();
        if (size == 0) revert EmptyBatch();
        bytes32 rootKey = _key(msg.sender, root);
        bytes32 idKey = _key(msg.sender, batchId);
        if (_batchIdByRoot[rootKey] != bytes32(0)) revert RootAlreadyAnchored(msg.sender, root);
        if (_batches[idKey].submitter != address(0)) revert BatchIdAlreadyUsed(msg.sender, batchId);
        _batches[idKey] = Batch(root, batchId, size, msg.sender, uint64(block.number), uint64(block.timestamp), metadataHash);
        _batchIdByRoot[rootKey] = batchId;
        batchCount += 1;
        emit BatchAnchored(root, batchId, msg.sender, size, metadataHash);
    }

    /// @notice The batch `submitter` anchored with this root (reverts UnknownRoot when none).
    function getBatchByRoot(address submitter, bytes32 root) external view returns (Batch memory) {
        bytes32 batchId = _batchIdByRoot[_key(submitter, root)];
        if (batchId == bytes32(0)) revert UnknownRoot(submitter, root);
        return _batches[_key(submitter, batchId)];
    }

    /// @notice The batch `submitter` anchored with this id (reverts UnknownBatch when none).
    function getBatch(address submitter, bytes32 batchId) external view returns (Batch memory) {
        Batch memory b = _batches[_key(submitter, batchId)];
        if (b.submitter == address(0)) revert UnknownBatch(submitter, batchId);
        return b;
    }

    /// @notice Whether `submitter` has anchored `root`.
    function isAnchored(address submitter, bytes32 root) external view returns (bool) {
        return _batchIdByRoot[_key(submitter, root)] != bytes32(0);
    }

    /// @notice The on-chain name of claim `claimIdHash` of `insurer`: keccak256(abi.encode(insurer, claimIdHash)).
    function claimKey(address insurer, bytes32 claimIdHash) public pure returns (bytes32) {
        return keccak256(abi.encode(insurer, claimIdHash));
    }

    /// @notice Record the next lifecycle step of one of the caller's claims. A claim is named by its
    ///         insurer and its id hash together, so only the insurer ever moves it; steps follow
    ///         REPORTED -> MATERIALS_COMPLETE -> ASSESSED -> APPROVED|REJECTED, APPROVED -> PAID.
    /// @param claimIdHash hash of the claim id (the id itself stays off chain)
    /// @param detailHash hash of the step's details (assessment report, payment reference)
    /// @param flags FLAG_EXPRESS with an assessment; 0 otherwise
    function recordClaimStep(bytes32 claimIdHash, ClaimStep step, bytes32 detailHash, uint8 flags) external onlyGoodStanding {
        bytes32 key = claimKey(msg.sender, claimIdHash);
        Claim storage c = _claims[key];
        if (!_isNextStep(c.step, step)) revert InvalidClaimStep(key, c.step, step);
        if (c.step == ClaimStep.NONE) c.insurer = msg.sender;
        c.step = step;
        c.updatedAt = uint64(block.timestamp);
        emit ClaimStepRecorded(key, claimIdHash, msg.sender, step, detailHash, flags);
    }

    /// @notice The current state of `insurer`'s claim `claimIdHash`.
    function getClaim(address insurer, bytes32 claimIdHash) external view returns (Claim memory) {
        return _claims[claimKey(insurer, claimIdHash)];
    }

    function _key(address submitter, bytes32 value) internal pure returns (bytes32) {
        return keccak256(abi.encode(submitter, value));
    }

    function _isNextStep(ClaimStep from, ClaimStep to) internal pure returns (bool) {
        if (from == ClaimStep.NONE) return to == ClaimStep.REPORTED;
        if (from == ClaimStep.REPORTED) return to == ClaimStep.MATERIALS_COMPLETE;
        if (from == ClaimStep.MATERIALS_COMPLETE) return to == ClaimStep.ASSESSED;
        if (from == ClaimStep.ASSESSED) return to == ClaimStep.APPROVED || to == ClaimStep.REJECTED;
        if (from == ClaimStep.APPROVED) return to == ClaimStep.PAID;
        return false;
    }
}

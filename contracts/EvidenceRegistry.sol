// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import "./MemberGated.sol";

/// @title Write-once anchors of claim-evidence Merkle roots, and the claim lifecycle.
/// @notice Members anchor the RFC 6962 root of each evidence batch; an auditor later checks a
///         document's inclusion proof against the root read from here. Documents never touch the chain.
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
    error RootAlreadyAnchored(bytes32 root);
    error BatchIdAlreadyUsed(bytes32 batchId);
    error UnknownRoot(bytes32 root);
    error UnknownBatch(bytes32 batchId);
    error NotClaimInsurer(bytes32 claimIdHash, address caller);
    error InvalidClaimStep(bytes32 claimIdHash, ClaimStep from, ClaimStep to);

    event BatchAnchored(bytes32 indexed root, bytes32 indexed batchId, address indexed submitter, uint64 size, bytes32 metadataHash);
    event ClaimStepRecorded(bytes32 indexed claimIdHash, ClaimStep indexed step, address indexed actor, bytes32 detailHash, uint8 flags);

    mapping(bytes32 => Batch) private _byRoot;
    mapping(bytes32 => bytes32) private _rootByBatchId;
    mapping(bytes32 => Claim) private _claims;
    uint256 public batchCount;

    constructor(IConsortiumRegistry registry_) MemberGated(registry_) {}

    /// @notice Anchor the root of an evidence batch of `size` leaves; each root and each batch id once only.
    /// @param metadataHash hash of the batch's metadata (time window, document types), not the documents
    function anchorBatch(bytes32 root, uint64 size, bytes32 batchId, bytes32 metadataHash) external onlyGoodStanding {
        if (root == bytes32(0)) revert EmptyRoot();
        if (batchId == bytes32(0)) revert EmptyBatchId();
        if (size == 0) revert EmptyBatch();
        if (_byRoot[root].submitter != address(0)) revert RootAlreadyAnchored(root);
        if (_rootByBatchId[batchId] != bytes32(0)) revert BatchIdAlreadyUsed(batchId);
        _byRoot[root] = Batch(root, batchId, size, msg.sender, uint64(block.number), uint64(block.timestamp), metadataHash);
        _rootByBatchId[batchId] = root;
        batchCount += 1;
        emit BatchAnchored(root, batchId, msg.sender, size, metadataHash);
    }

    /// @notice The anchored batch with this root (reverts UnknownRoot when none).
    function getBatchByRoot(bytes32 root) external view returns (Batch memory) {
        Batch memory b = _byRoot[root];
        if (b.submitter == address(0)) revert UnknownRoot(root);
        return b;
    }

    /// @notice The anchored batch with this id (reverts UnknownBatch when none).
    function getBatch(bytes32 batchId) external view returns (Batch memory) {
        bytes32 root = _rootByBatchId[batchId];
        if (root == bytes32(0)) revert UnknownBatch(batchId);
        return _byRoot[root];
    }

    /// @notice Whether `root` has been anchored.
    function isAnchored(bytes32 root) external view returns (bool) {
        return _byRoot[root].submitter != address(0);
    }

    /// @notice Record the next lifecycle step of a claim. The member that reports a claim owns it;
    ///         steps follow REPORTED -> MATERIALS_COMPLETE -> ASSESSED -> APPROVED|REJECTED, APPROVED -> PAID.
    /// @param claimIdHash hash of the claim id (the id itself stays off chain)
    /// @param detailHash hash of the step's details (assessment report, payment reference)
    /// @param flags FLAG_EXPRESS with an assessment; 0 otherwise
    function recordClaimStep(bytes32 claimIdHash, ClaimStep step, bytes32 detailHash, uint8 flags) external onlyGoodStanding {
        Claim storage c = _claims[claimIdHash];
        if (c.step != ClaimStep.NONE && c.insurer != msg.sender) revert NotClaimInsurer(claimIdHash, msg.sender);
        if (!_isNextStep(c.step, step)) revert InvalidClaimStep(claimIdHash, c.step, step);
        if (c.step == ClaimStep.NONE) c.insurer = msg.sender;
        c.step = step;
        c.updatedAt = uint64(block.timestamp);
        emit ClaimStepRecorded(claimIdHash, step, msg.sender, detailHash, flags);
    }

    /// @notice The current state of a claim.
    function getClaim(bytes32 claimIdHash) external view returns (Claim memory) {
        return _claims[claimIdHash];
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

// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import "./MemberGated.sol";
import "./EvidenceRegistry.sol";
import "./ClaimPayouts.sol";

/// @title Mutual-aid apportionment: one approved claim's payout shared by all participants (一人患病, 众人均摊).
/// @notice The organising member anchors, once per claim, the root of the share tree (privacy/apportion.py:
///         RFC 6962 shape, every node carrying the sum of the shares below it) together with the payout, the
///         number of participants and the rule. Each participant checks its own share with an inclusion proof
///         against this root, and that proof also leads to the anchored total. The claim must be the
///         organiser's own, with its evidence root anchored and its lifecycle at APPROVED or PAID.
///         The payout to the claimant's payee is recorded with an off-chain payment reference and confirmed
///         by the payee's own transaction; a suspended member cannot be the payee.
///         A claim a risk pool already shares is refused: both reserve the claim on ClaimPayouts.
contract MutualAid is MemberGated {
    enum Rule { NONE, EQUAL, PRO_RATA }
    enum PayoutState { NONE, ANCHORED, PAID, CONFIRMED }

    struct Apportionment {
        address organiser;
        bytes32 claimIdHash;
        bytes32 shareRoot;
        uint128 payout;
        uint64 participants;
        Rule rule;
        PayoutState state;
        bytes32 shareListHash;
        address payee;
        bytes32 paymentRef;
        uint64 anchoredAt;
    }

    error ClaimNotApproved(bytes32 claimKey, EvidenceRegistry.ClaimStep step);
    error EvidenceNotAnchored(address organiser, bytes32 root);
    error AlreadyApportioned(bytes32 claimKey);
    error ClaimPaidByOtherScheme(bytes32 claimKey, address scheme);
    error BadApportionment();
    error UnknownApportionment(bytes32 claimKey);
    error NotOrganiser(bytes32 claimKey, address account);
    error NotPayee(bytes32 claimKey, address account);
    error WrongPayoutState(bytes32 claimKey, PayoutState state);
    error PayeeNotInGoodStanding(address payee);
    error EmptyPaymentRef();

    event ApportionmentAnchored(bytes32 indexed claimKey, address indexed organiser, bytes32 indexed shareRoot, Terms terms);
    event PayoutRecorded(bytes32 indexed claimKey, address indexed payee, uint128 payout, bytes32 paymentRef);
    event PayoutConfirmed(bytes32 indexed claimKey, address indexed payee, uint128 payout);

    EvidenceRegistry public immutable evidence;
    ClaimPayouts public immutable payouts;
    mapping(bytes32 => Apportionment) private _apportionments;
    uint256 public apportionmentCount;

    constructor(IConsortiumRegistry registry_, EvidenceRegistry evidence_, ClaimPayouts payouts_) MemberGated(registry_) {
        evidence = evidence_;
        payouts = payouts_;
    }

    /// @notice What the organiser anchors for one claim.
    /// @param shareRoot root hash of the share sum tree; its sum is `payout`
    /// @param shareListHash SHA-256 of the published share list (participant references and shares), or zero
    /// @param payee who receives the payout and confirms it (the claimant's account or its agent)
    struct Terms {
        bytes32 claimIdHash;
        bytes32 evidenceRoot;
        uint128 payout;
        uint64 participants;
        Rule rule;
        bytes32 shareRoot;
        bytes32 shareListHash;
        address payee;
    }

    /// @notice Anchor the apportionment of the caller's approved claim `t.claimIdHash` (once per claim).
    /// @return claimKey the claim key on EvidenceRegistry, under which the apportionment is recorded
    function anchorApportionment(Terms calldata t) external onlyGoodStanding returns (bytes32 claimKey) {
        if (t.payout == 0 || t.participants == 0 || t.rule == Rule.NONE || t.shareRoot == bytes32(0) || t.payee == address(0)) {
            revert BadApportionment();
        }
        claimKey = evidence.claimKey(msg.sender, t.claimIdHash);
        if (_apportionments[claimKey].organiser != address(0)) revert AlreadyApportioned(claimKey);
        address other = payouts.paidBy(claimKey);
        if (other != address(0)) revert ClaimPaidByOtherScheme(claimKey, other);
        if (!evidence.isAnchored(msg.sender, t.evidenceRoot)) revert EvidenceNotAnchored(msg.sender, t.evidenceRoot);
        EvidenceRegistry.ClaimStep step = evidence.getClaim(msg.sender, t.claimIdHash).step;
        if (step != EvidenceRegistry.ClaimStep.APPROVED && step != EvidenceRegistry.ClaimStep.PAID) {
            revert ClaimNotApproved(claimKey, step);
        }
        _requirePayable(t.payee);
        _apportionments[claimKey] = Apportionment(msg.sender, t.claimIdHash, t.shareRoot, t.payout, t.participants, t.rule,
                                                  PayoutState.ANCHORED, t.shareListHash, t.payee, bytes32(0), uint64(block.timestamp));
        apportionmentCount += 1;
        emit ApportionmentAnchored(claimKey, msg.sender, t.shareRoot, t);
        payouts.reserve(claimKey);  // last: reverts the whole anchoring if another scheme took the claim meanwhile
    }

    /// @notice The organiser records that it paid the payout to the payee off chain, under `paymentRef`.
    function recordPayout(bytes32 claimKey, bytes32 paymentRef) external onlyGoodStanding {
        Apportionment storage a = _get(claimKey);
        if (a.organiser != msg.sender) revert NotOrganiser(claimKey, msg.sender);
        if (paymentRef == bytes32(0)) revert EmptyPaymentRef();
        if (a.state != PayoutState.ANCHORED) revert WrongPayoutState(claimKey, a.state);
        _requirePayable(a.payee);
        a.state = PayoutState.PAID;
        a.paymentRef = paymentRef;
        emit PayoutRecorded(claimKey, a.payee, a.payout, paymentRef);
    }

    /// @notice The payee confirms it received the recorded payout.
    function confirmPayout(bytes32 claimKey) external {
        Apportionment storage a = _get(claimKey);
        if (a.payee != msg.sender) revert NotPayee(claimKey, msg.sender);
        if (a.state != PayoutState.PAID) revert WrongPayoutState(claimKey, a.state);
        _requirePayable(msg.sender);
        a.state = PayoutState.CONFIRMED;
        emit PayoutConfirmed(claimKey, msg.sender, a.payout);
    }

    /// @notice The apportionment recorded under `claimKey`.
    function getApportionment(bytes32 claimKey) external view returns (Apportionment memory) {
        return _get(claimKey);
    }

    function _get(bytes32 claimKey) internal view returns (Apportionment storage a) {
        a = _apportionments[claimKey];
        if (a.organiser == address(0)) revert UnknownApportionment(claimKey);
    }

    /// @dev A payee that is a member must be in good standing; a claimant who is no member may hold any account.
    function _requirePayable(address payee) internal view {
        if (registry.isMember(payee) && !registry.isInGoodStanding(payee)) revert PayeeNotInGoodStanding(payee);
    }
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import "./ConsortiumHandler.sol";

/// @title Invariants of the consortium contracts under random member actions (forge invariant tests).
/// @notice Run by tests/contracts/test_invariants.py (`forge test` with the project's solc wrapper, offline).
contract ConsortiumInvariants {
    ConsortiumRegistry internal registry;
    DataUseAuthorization internal auth;
    EvidenceRegistry internal evidence;
    ConsortiumHandler internal handler;

    function setUp() public {
        uint256 n = 5;
        address[] memory accounts = new address[](n);
        string[] memory names = new string[](n);
        ConsortiumRegistry.Role[] memory roles = new ConsortiumRegistry.Role[](n);
        string[] memory endpoints = new string[](n);
        bytes32[] memory keys = new bytes32[](n);
        ConsortiumRegistry.Role[5] memory genesisRoles = [ConsortiumRegistry.Role.INSURER, ConsortiumRegistry.Role.INSURER,
            ConsortiumRegistry.Role.PLATFORM, ConsortiumRegistry.Role.REGULATOR, ConsortiumRegistry.Role.AUDITOR];
        for (uint256 i = 0; i < n; i++) {
            accounts[i] = address(uint160(0x1000 + i));
            names[i] = "member";
            roles[i] = genesisRoles[i];
        }
        registry = new ConsortiumRegistry(accounts, names, roles, endpoints, keys, keys);
        auth = new DataUseAuthorization(registry);
        evidence = new EvidenceRegistry(registry);
        address[] memory actors = new address[](7);  // the genesis five, then two outsiders / candidates
        for (uint256 i = 0; i < 7; i++) actors[i] = address(uint160(0x1000 + i));
        handler = new ConsortiumHandler(registry, auth, evidence, actors);
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    /// @notice A revoked or expired grant never authorizes.
    function invariant_revokedOrExpiredGrantNeverAuthorizes() public view {
        uint256 count = auth.grantCount();
        for (uint256 id = 1; id <= count; id++) {
            DataUseAuthorization.Grant memory g = auth.getGrant(id);
            if (g.revokedAt != 0 || block.timestamp >= g.expiresAt) {
                require(auth.grantStatus(id) != DataUseAuthorization.GrantState.VALID, "revoked/expired grant is VALID");
                require(auth.activeGrantId(g.owner, g.grantee, g.datasetId, g.purpose) != id, "revoked/expired grant authorizes");
            }
        }
    }

    /// @notice An evidence root is write-once (per submitter): its first anchoring never changes.
    function invariant_evidenceRootIsWriteOnce() public view {
        require(!handler.rootOverwritten(), "a submitter anchored the same root twice");
        uint256 n = handler.anchoredCount();
        for (uint256 i = 0; i < n; i++) {
            bytes32 key = handler.anchoredKeys(i);
            EvidenceRegistry.Batch memory b = evidence.getBatchByRoot(handler.keySubmitter(key), handler.keyRoot(key));
            require(b.batchId == handler.firstBatchId(key) && b.size == handler.firstSize(key), "anchored batch changed");
        }
    }

    /// @notice Each member votes once per proposal, and the tally is the number of distinct voters.
    function invariant_eachMemberVotesOncePerProposal() public view {
        require(!handler.votedTwice(), "a member's vote counted twice");
    }

    /// @notice A proposal is carried out only with more than two thirds of the electorate (members not
    ///         expelled); the electorate is exactly that count.
    function invariant_admissionNeedsTheSupermajorityOfTheElectorate() public view {
        require(!handler.admittedWithoutSupermajority(), "carried without a supermajority");
        uint256 notExpelled;
        for (uint256 i = 0; i < registry.memberCount(); i++) {
            if (registry.getMember(registry.memberAt(i)).status != ConsortiumRegistry.Status.EXPELLED) notExpelled++;
        }
        require(registry.electorate() == notExpelled, "electorate is not the count of members not expelled");
    }

    /// @notice A suspended or expelled member (or a non-member) changes no state.
    function invariant_suspendedMemberChangesNoState() public view {
        require(!handler.suspendedChangedState(), "a member not in good standing changed state");
    }
}

-- measure_service: per school and year, social training, enterprise projects, service
-- income, patents, east-west cooperation (a school taking part counts 1, so a region's sum
-- counts schools) and rural revitalisation training.
-- Output grain: one row per (year, school_code, measure_id).
with service as (
    select * from curated_service
),

per_school as (
    select
        year,
        school_code,
        sum(social_training_programs_count)::double as social_training_programs_count,
        sum(social_training_person_times)::double as social_training_person_times,
        sum(enterprise_projects_count)::double as enterprise_projects_count,
        sum(enterprise_innovations_count)::double as enterprise_innovations_count,
        sum(technical_service_income_yuan)::double as technical_service_income_yuan,
        sum(training_income_yuan)::double as training_income_yuan,
        sum(patents_count)::double as patents_count,
        sum(invention_patents_count)::double as invention_patents_count,
        max(coalesce(is_east_west_cooperation, false)::int)::double
            as east_west_cooperation_school_count,
        sum(rural_revitalization_training_person_times)::double
            as rural_revitalization_training_person_times,
        -- Optional columns (2024 contract): null where a school's file lacks them, so a
        -- region's sum counts the schools that report.
        sum(patent_applications_count)::double as patent_applications_count,
        sum(invention_patent_applications_count)::double as invention_patent_applications_count,
        sum(utility_model_patents_count)::double as utility_model_patents_count,
        sum(vertical_research_income_yuan)::double as vertical_research_income_yuan,
        sum(technology_transaction_income_yuan)::double as technology_transaction_income_yuan,
        sum(enterprise_staff_training_person_times)::double
            as enterprise_staff_training_person_times,
        sum(east_west_students_count)::double as east_west_students_count,
        sum(east_west_teacher_batches_count)::double as east_west_teacher_batches_count,
        sum(east_west_donation_yuan)::double as east_west_donation_yuan,
        sum(east_west_partner_enterprises_count)::double as east_west_partner_enterprises_count
    from service
    group by year, school_code
),

final as (
    unpivot per_school
    on columns(* exclude (year, school_code))
    into name measure_id value measure_value
)

select year, school_code, null::varchar as city_name, measure_id, measure_value from final
